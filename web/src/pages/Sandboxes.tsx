// The team's sandboxes, polled every few seconds, and the create dialog.
import { useEffect, useState } from "preact/hooks";
import { Api, Sandbox, Snapshot } from "../api";
import { navigate } from "../router";
import { isLive, SandboxActions, useShownStatus } from "../components/SandboxActions";
import { BoxIcon } from "../components/Icons";
import { Button, Dialog, Empty, ErrorBox, Link, PageHeader, Spinner, StatusBadge, Time, duration, mib, shortId, toast, useFocusHeading, usePoll } from "../components/ui";

const POLL_MS = 3000;

export function SandboxesPage() {
  useFocusHeading("sandboxes");
  document.title = "Sandboxes · Warren";
  const [showAll, setShowAll] = useState(false);
  const list = usePoll((s) => Api.listSandboxes(s, showAll), POLL_MS, [showAll]);
  const [creating, setCreating] = useState(false);

  const shown = list.data ?? [];

  return (
    <>
      <PageHeader
        title="Sandboxes"
        description="Isolated machines for running code. Status refreshes every few seconds."
        actions={
          <Button variant="primary" onClick={() => setCreating(true)}>
            New sandbox
          </Button>
        }
      />
      <ErrorBox error={list.error} title={list.data ? "Could not refresh the list (showing the last one)" : "Could not load sandboxes"} />
      {list.data && !showAll && <Stats sandboxes={shown} />}
      <div class="card">
        <div class="card-toolbar">
          <div class="muted small" aria-live="polite">
            {list.data ? `${shown.length} ${showAll ? "" : "active "}sandbox${shown.length === 1 ? "" : "es"}` : ""}
          </div>
          <label class="toggle">
            <input type="checkbox" checked={showAll} onChange={(e) => setShowAll(e.currentTarget.checked)} />
            Show stopped and failed
          </label>
        </div>
        {list.loading && !list.data ? (
          <div class="pad center">
            <Spinner label="Loading sandboxes" />
          </div>
        ) : list.data && shown.length === 0 ? (
          <Empty title={showAll ? "No sandboxes yet" : "No active sandboxes"} icon={<BoxIcon />}>
            <p class="muted">Start one from a template; it boots in about a second.</p>
            <Button variant="primary" onClick={() => setCreating(true)}>
              New sandbox
            </Button>
          </Empty>
        ) : list.data ? (
          <div class="table-wrap">
            <table>
              <caption class="sr-only">Sandboxes</caption>
              <thead>
                <tr>
                  <th scope="col">Sandbox</th>
                  <th scope="col">Status</th>
                  <th scope="col">Template</th>
                  <th scope="col">Resources</th>
                  <th scope="col">Created</th>
                  <th scope="col">Expires</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {shown.map((s) => (
                  <tr key={s.id} data-sandbox-id={s.id}>
                    <td>
                      <Link href={`/console/sandboxes/${s.id}`} class="mono strong nowrap">
                        {shortId(s.id)}
                      </Link>
                    </td>
                    <td>
                      <ShownStatus s={s} />
                    </td>
                    <td>{s.template}</td>
                    <td class="nowrap">
                      {s.vcpus} vCPU · {mib(s.memory_mb)}
                    </td>
                    <td>
                      <Time iso={s.created_at} />
                    </td>
                    <td>{isLive(s) ? <Time iso={s.expires_at} /> : <span class="muted">—</span>}</td>
                    <td class="actions">
                      <SandboxActions sandbox={s} compact onChange={() => void list.reload()} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </div>
      <CreateSandboxDialog open={creating} onClose={() => setCreating(false)} />
    </>
  );
}

function ShownStatus({ s }: { s: Sandbox }) {
  return <StatusBadge status={useShownStatus(s.id, s.status) ?? s.status} />;
}

function Stats({ sandboxes }: { sandboxes: Sandbox[] }) {
  const running = sandboxes.filter((s) => s.status === "running");
  const paused = sandboxes.filter((s) => s.status === "paused").length;
  const cpus = running.reduce((n, s) => n + s.vcpus, 0);
  const mem = running.reduce((n, s) => n + s.memory_mb, 0);
  return (
    <dl class="stats">
      <div class="stat">
        <dt>Running</dt>
        <dd>{running.length}</dd>
      </div>
      <div class="stat">
        <dt>Paused</dt>
        <dd>{paused}</dd>
      </div>
      <div class="stat">
        <dt>vCPUs in use</dt>
        <dd>{cpus}</dd>
      </div>
      <div class="stat">
        <dt>Memory in use</dt>
        <dd>{mib(mem)}</dd>
      </div>
    </dl>
  );
}

const CPUS = [1, 2, 4];
const MEMORY = [256, 512, 1024, 2048, 4096];
const TIMEOUTS = [300, 900, 3600, 6 * 3600, 24 * 3600];

export function CreateSandboxDialog({ open, onClose, template: initialTemplate }: { open: boolean; onClose: () => void; template?: string }) {
  const [template, setTemplate] = useState(initialTemplate ?? "minimal");
  const [vcpus, setVcpus] = useState(1);
  const [memory, setMemory] = useState(512);
  const [timeout, setTimeoutS] = useState(3600);
  const [internet, setInternet] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [snapshots, setSnapshots] = useState<Snapshot[]>([]);

  useEffect(() => {
    if (!open) return;
    setError(null);
    if (initialTemplate) setTemplate(initialTemplate);
    Api.listSnapshots().then(setSnapshots, () => setSnapshots([]));
  }, [open, initialTemplate]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = await Api.createSandbox({ template: template.trim() || "minimal", vcpus, memory_mb: memory, timeout_s: timeout, allow_internet: internet });
      toast(`Sandbox ${shortId(s.id)} is ${s.status}.`);
      onClose();
      navigate(`/console/sandboxes/${s.id}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Dialog open={open} title="New sandbox" onClose={onClose}>
      <form onSubmit={submit}>
        <div class="field">
          <label for="sb-template">Template</label>
          <input id="sb-template" list="sb-templates" required value={template} onInput={(e) => setTemplate(e.currentTarget.value)} aria-describedby="sb-template-hint" />
          <datalist id="sb-templates">
            <option value="minimal">busybox + envd, boots fastest</option>
            <option value="base">Debian with python3, pip, git, curl</option>
            {snapshots.map((s) => (
              <option key={s.name} value={s.name}>
                snapshot
              </option>
            ))}
          </datalist>
          <p id="sb-template-hint" class="hint">
            <code>minimal</code> (busybox), <code>base</code> (Debian + Python) if your hosts have it, or one of your snapshots.
          </p>
        </div>
        <div class="field-row">
          <div class="field">
            <label for="sb-cpus">vCPUs</label>
            <select id="sb-cpus" value={vcpus} onChange={(e) => setVcpus(Number(e.currentTarget.value))}>
              {CPUS.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="sb-mem">Memory</label>
            <select id="sb-mem" value={memory} onChange={(e) => setMemory(Number(e.currentTarget.value))}>
              {MEMORY.map((m) => (
                <option key={m} value={m}>
                  {mib(m)}
                </option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="sb-timeout">Timeout</label>
            <select id="sb-timeout" value={timeout} onChange={(e) => setTimeoutS(Number(e.currentTarget.value))}>
              {TIMEOUTS.map((t) => (
                <option key={t} value={t}>
                  {duration(t)}
                </option>
              ))}
            </select>
          </div>
        </div>
        <label class="toggle field">
          <input type="checkbox" checked={internet} onChange={(e) => setInternet(e.currentTarget.checked)} />
          Allow internet access
        </label>
        <ErrorBox error={error} title="Could not create the sandbox" />
        <div class="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            {busy ? "Creating…" : "Create sandbox"}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
