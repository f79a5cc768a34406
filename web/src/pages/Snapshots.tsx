// Snapshot templates of the team: create one from a sandbox, start sandboxes from one, delete.
import { useEffect, useState } from "preact/hooks";
import { Api, Sandbox, Snapshot, describe } from "../api";
import { navigate } from "../router";
import { CreateSandboxDialog } from "./Sandboxes";
import { Button, Dialog, Empty, ErrorBox, Link, PageHeader, Spinner, StatusBadge, Time, bytes, shortId, toast, useFocusHeading, usePoll } from "../components/ui";

export function SnapshotsPage() {
  useFocusHeading("snapshots");
  document.title = "Snapshots · Warren";
  const snaps = usePoll(() => Api.listSnapshots(), 10000);
  const [creating, setCreating] = useState(false);
  const [startFrom, setStartFrom] = useState<string | null>(null);
  const [deleting, setDeleting] = useState<Snapshot | null>(null);

  return (
    <>
      <PageHeader
        title="Snapshots"
        description="A snapshot saves a sandbox's memory and files. New sandboxes created from it resume exactly there."
        actions={
          <Button variant="primary" onClick={() => setCreating(true)}>
            New snapshot
          </Button>
        }
      />
      <ErrorBox error={snaps.error} title="Could not load snapshots" />
      <div class="card">
        {snaps.loading && !snaps.data ? (
          <div class="pad center">
            <Spinner label="Loading snapshots" />
          </div>
        ) : snaps.data && snaps.data.length === 0 ? (
          <Empty title="No snapshots yet">
            <p class="muted">Snapshot a running sandbox to reuse its state.</p>
          </Empty>
        ) : snaps.data ? (
          <div class="table-wrap">
            <table>
              <caption class="sr-only">Snapshots</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">From sandbox</th>
                  <th scope="col">Status</th>
                  <th scope="col" class="num">
                    Size
                  </th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {snaps.data.map((s) => (
                  <tr key={s.name}>
                    <td class="strong">{s.name}</td>
                    <td>
                      {s.sandbox_id ? (
                        <Link class="mono" href={`/console/sandboxes/${s.sandbox_id}`}>
                          {shortId(String(s.sandbox_id))}
                        </Link>
                      ) : (
                        <span class="muted">—</span>
                      )}
                    </td>
                    <td>{s.status ? <StatusBadge status={String(s.status)} /> : <span class="muted">—</span>}</td>
                    <td class="num">{bytes(s.size_bytes as number | null | undefined)}</td>
                    <td>
                      <Time iso={s.created_at as string | null | undefined} />
                    </td>
                    <td class="actions">
                      <div class="btn-row">
                        <Button size="sm" onClick={() => setStartFrom(s.name)}>
                          Start sandbox
                        </Button>
                        <Button size="sm" variant="danger" onClick={() => setDeleting(s)} aria-label={`Delete snapshot ${s.name}`}>
                          Delete
                        </Button>
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </div>
      <NewSnapshotDialog open={creating} onClose={() => setCreating(false)} onDone={() => { setCreating(false); void snaps.reload(); }} />
      <CreateSandboxDialog open={startFrom !== null} template={startFrom ?? undefined} onClose={() => setStartFrom(null)} />
      <DeleteSnapshotDialog snapshot={deleting} onClose={() => setDeleting(null)} onDone={() => { setDeleting(null); void snaps.reload(); }} />
    </>
  );
}

function NewSnapshotDialog({ open, onClose, onDone }: { open: boolean; onClose: () => void; onDone: () => void }) {
  const [sandboxes, setSandboxes] = useState<Sandbox[] | null>(null);
  const [sandboxId, setSandboxId] = useState("");
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (!open) return;
    setError(null);
    setSandboxes(null);
    Api.listSandboxes().then(
      (l) => {
        const ok = l.filter((s) => s.status === "running" || s.status === "paused");
        setSandboxes(ok);
        setSandboxId((cur) => (ok.some((s) => s.id === cur) ? cur : ok[0]?.id ?? ""));
      },
      (e) => {
        setSandboxes([]);
        setError(e);
      },
    );
  }, [open]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await Api.createSnapshot(sandboxId, name.trim());
      toast(`Snapshot “${name.trim()}” created.`);
      setName("");
      onDone();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open={open} title="New snapshot" onClose={onClose}>
      <form onSubmit={submit}>
        <div class="field">
          <label for="snap-sandbox">Sandbox</label>
          {sandboxes === null ? (
            <div>
              <Spinner label="Loading sandboxes" />
            </div>
          ) : sandboxes.length === 0 ? (
            <p class="muted">
              No running or paused sandbox to snapshot.{" "}
              <button type="button" class="link" onClick={() => { onClose(); navigate("/console/sandboxes"); }}>
                Create one first
              </button>
              .
            </p>
          ) : (
            <select id="snap-sandbox" value={sandboxId} onChange={(e) => setSandboxId(e.currentTarget.value)}>
              {sandboxes.map((s) => (
                <option key={s.id} value={s.id}>
                  {shortId(s.id)} · {s.template} · {s.status}
                </option>
              ))}
            </select>
          )}
        </div>
        <div class="field">
          <label for="snap-name2">Snapshot name</label>
          <input id="snap-name2" required pattern="[a-z0-9][a-z0-9._\-]*" title="Lower-case letters, digits, dots, dashes and underscores" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <p class="hint">Lower-case letters, digits, “.”, “-” and “_”. Used as the template name.</p>
        </div>
        <ErrorBox error={error} title="Could not create the snapshot" />
        <div class="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy} disabled={!sandboxId}>
            {busy ? "Snapshotting…" : "Create snapshot"}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

function DeleteSnapshotDialog({ snapshot, onClose, onDone }: { snapshot: Snapshot | null; onClose: () => void; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const del = async () => {
    if (!snapshot) return;
    setBusy(true);
    setError(null);
    try {
      await Api.deleteSnapshot(snapshot.name);
      toast(`Snapshot “${snapshot.name}” deleted from every host.`);
      onDone();
    } catch (e) {
      setError(e);
      toast(`Could not delete snapshot ${snapshot.name}: ${describe(e)}`, "error");
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={snapshot !== null} title="Delete snapshot" onClose={() => { setError(null); onClose(); }}>
      <p>
        Delete snapshot <strong>{snapshot?.name}</strong> from every host? Running sandboxes started from it keep running.
      </p>
      <ErrorBox error={error} title="Could not delete the snapshot" />
      <div class="dialog-actions">
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="danger" busy={busy} onClick={del}>
          Delete snapshot
        </Button>
      </div>
    </Dialog>
  );
}
