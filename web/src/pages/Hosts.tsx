// Hosts (admins only): the machines running agents. Add one (a one-time registration token),
// issue a fresh token, delete (a 409 first lists the sandboxes it still holds; then force).
import { useState } from "preact/hooks";
import { Api, ApiError, Host, RegistrationToken } from "../api";
import { Button, CopyButton, Dialog, Empty, ErrorBox, PageHeader, Spinner, StatusBadge, Time, mib, shortId, toast, useFocusHeading, usePoll } from "../components/ui";

export function HostsPage() {
  useFocusHeading("hosts");
  document.title = "Hosts · Warren";
  const hosts = usePoll((s) => Api.listHosts(s), 5000);
  const [adding, setAdding] = useState(false);
  const [token, setToken] = useState<{ host: Host | null; token: RegistrationToken } | null>(null);
  const [deleting, setDeleting] = useState<Host | null>(null);
  const [tokenBusy, setTokenBusy] = useState<string | null>(null);

  const forbidden = hosts.error instanceof ApiError && hosts.error.status === 403;
  const list = (hosts.data ?? []).filter((h) => h.status !== "deleted");

  const newToken = async (h: Host) => {
    setTokenBusy(h.id);
    try {
      setToken({ host: h, token: await Api.hostToken(h.id) });
    } catch (e) {
      toast(`Could not issue a token for host ${shortId(h.id)}: ${e instanceof Error ? e.message : String(e)}`, "error");
    } finally {
      setTokenBusy(null);
    }
  };

  return (
    <>
      <PageHeader
        title="Hosts"
        description="Machines running a Warren agent. Sandboxes are placed on online hosts with room."
        actions={
          !forbidden && (
            <Button variant="primary" onClick={() => setAdding(true)}>
              Add host
            </Button>
          )
        }
      />
      {forbidden ? (
        <div class="card pad">
          <p>Only platform admins can see hosts.</p>
        </div>
      ) : (
        <>
          <ErrorBox error={hosts.error} title="Could not load hosts" />
          {token && <TokenPanel host={token.host} token={token.token} onDone={() => setToken(null)} />}
          <div class="card">
            {hosts.loading && !hosts.data ? (
              <div class="pad center">
                <Spinner label="Loading hosts" />
              </div>
            ) : hosts.data && list.length === 0 ? (
              <Empty title="No hosts">
                <p class="muted">Add a host, then start an agent there with the registration token.</p>
              </Empty>
            ) : hosts.data ? (
              <div class="table-wrap">
                <table>
                  <caption class="sr-only">Hosts</caption>
                  <thead>
                    <tr>
                      <th scope="col">Host</th>
                      <th scope="col">Status</th>
                      <th scope="col">Sandboxes</th>
                      <th scope="col">Machine</th>
                      <th scope="col">Memory free</th>
                      <th scope="col">Templates</th>
                      <th scope="col">Last heartbeat</th>
                      <th scope="col">
                        <span class="sr-only">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((h) => (
                      <tr key={h.id}>
                        <td>
                          <div class="strong mono">{h.address ?? "—"}</div>
                          <div class="muted small mono" title={h.id}>
                            {shortId(h.id)}
                            {h.agent_version ? ` · v${h.agent_version}` : ""}
                          </div>
                        </td>
                        <td>
                          <StatusBadge status={h.status} />
                        </td>
                        <td>
                          <Capacity used={h.live_sandboxes} total={h.sandbox_capacity} />
                        </td>
                        <td class="small nowrap">
                          {h.cpu_count ?? "?"} CPU · {mib(h.memory_mb)}
                          <div class="muted">
                            {[h.runtime, h.arch].filter(Boolean).join(" · ") || "—"}
                          </div>
                        </td>
                        <td class="small">{mib(h.free_memory_mb)}</td>
                        <td class="small">{h.templates && h.templates.length ? h.templates.join(", ") : <span class="muted">—</span>}</td>
                        <td>
                          <Time iso={h.last_heartbeat_at} />
                        </td>
                        <td class="actions">
                          <div class="btn-row">
                            <Button size="sm" busy={tokenBusy === h.id} onClick={() => void newToken(h)}>
                              New token
                            </Button>
                            <Button size="sm" variant="danger" onClick={() => setDeleting(h)} aria-label={`Delete host ${h.address ?? h.id}`}>
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
        </>
      )}
      <AddHostDialog
        open={adding}
        onClose={() => setAdding(false)}
        onCreated={(host, t) => {
          setAdding(false);
          setToken({ host, token: t });
          void hosts.reload();
        }}
      />
      <DeleteHostDialog host={deleting} onClose={() => setDeleting(null)} onDone={() => { setDeleting(null); void hosts.reload(); }} />
    </>
  );
}

function Capacity({ used, total }: { used: number | null; total: number | null }) {
  if (total === null || total === undefined) return <span class="muted">{used ?? 0} / ?</span>;
  const pct = total > 0 ? Math.min(100, Math.round(((used ?? 0) / total) * 100)) : 0;
  return (
    <div class="capacity">
      <span class="small">
        {used ?? 0} / {total}
      </span>
      <div class="bar" role="meter" aria-valuemin={0} aria-valuemax={total} aria-valuenow={used ?? 0} aria-label="Sandboxes used">
        <div style={{ width: `${pct}%` }} class={pct > 85 ? "hot" : ""} />
      </div>
    </div>
  );
}

function TokenPanel({ host, token, onDone }: { host: Host | null; token: RegistrationToken; onDone: () => void }) {
  const addr = host?.address ?? "HOST:PORT";
  const cmd = `warren agent --register ${token.registration_token} --address ${addr} --control-plane ${window.location.origin}`;
  return (
    <section class="card pad new-key" aria-labelledby="token-title">
      <h2 id="token-title">Registration token{host ? ` for ${host.address ?? shortId(host.id)}` : ""}</h2>
      <p>
        Shown once, valid until <Time iso={token.token_expires_at} /> and for one registration. Run on the host, as root:
      </p>
      <div class="secret">
        <code>{cmd}</code>
        <CopyButton text={cmd} label="Copy command" />
      </div>
      <Button size="sm" onClick={onDone}>
        Done
      </Button>
    </section>
  );
}

function AddHostDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (h: Host, t: RegistrationToken) => void }) {
  const [address, setAddress] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const r = await Api.createHost(address.trim() || undefined);
      setAddress("");
      onCreated(r.host, { registration_token: r.registration_token, token_expires_at: r.token_expires_at });
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title="Add host" onClose={() => { setError(null); onClose(); }}>
      <form onSubmit={submit}>
        <div class="field">
          <label for="host-address">
            Agent address <span class="muted">(optional)</span>
          </label>
          <input id="host-address" class="mono" placeholder="10.0.0.5:8081" value={address} onInput={(e) => setAddress(e.currentTarget.value)} />
          <p class="hint">Where the control plane reaches the agent; the agent can also report it when it registers.</p>
        </div>
        <ErrorBox error={error} title="Could not add the host" />
        <div class="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            Create registration token
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

function DeleteHostDialog({ host, onClose, onDone }: { host: Host | null; onClose: () => void; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [affected, setAffected] = useState<string[] | null>(null);

  const close = () => {
    setError(null);
    setAffected(null);
    onClose();
  };
  const del = async (force: boolean) => {
    if (!host) return;
    setBusy(true);
    setError(null);
    try {
      await Api.deleteHost(host.id, force);
      toast(`Host ${host.address ?? shortId(host.id)} deleted.`);
      setAffected(null);
      onDone();
    } catch (e) {
      if (e instanceof ApiError && e.status === 409 && !force) {
        const ids = Array.isArray(e.detail.sandboxes) ? (e.detail.sandboxes as string[]) : [];
        setAffected(ids);
      } else {
        setError(e);
      }
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={host !== null} title="Delete host" onClose={close}>
      {affected === null ? (
        <p>
          Delete host <strong class="mono">{host?.address ?? host?.id}</strong>? Its agent can no longer register or take sandboxes.
        </p>
      ) : (
        <div class="alert alert-warn" role="alert">
          <p>
            <strong>This host still holds {affected.length} sandbox{affected.length === 1 ? "" : "es"}.</strong> Forcing the delete
            destroys them (best effort) and marks them stopped.
          </p>
          <ul class="mono small id-list">
            {affected.slice(0, 20).map((id) => (
              <li key={id}>{id}</li>
            ))}
            {affected.length > 20 && <li>… and {affected.length - 20} more</li>}
          </ul>
        </div>
      )}
      <ErrorBox error={error} title="Could not delete the host" />
      <div class="dialog-actions">
        <Button onClick={close}>Cancel</Button>
        {affected === null ? (
          <Button variant="danger" busy={busy} onClick={() => void del(false)}>
            Delete host
          </Button>
        ) : (
          <Button variant="danger" busy={busy} onClick={() => void del(true)}>
            Destroy {affected.length} sandbox{affected.length === 1 ? "" : "es"} and delete
          </Button>
        )}
      </div>
    </Dialog>
  );
}
