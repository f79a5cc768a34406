// Lifecycle actions of one sandbox (pause, resume, set timeout, snapshot, destroy), shared by
// the sandbox list and the sandbox page. Each shows its own busy state and, on failure, the
// server's words; nothing changes on screen until the server says it did.
import { useEffect, useState } from "preact/hooks";
import { Api, Sandbox, describe } from "../api";
import { navigate } from "../router";
import { Button, Dialog, ErrorBox, duration, shortId, toast } from "./ui";

const TIMEOUTS = [300, 900, 3600, 6 * 3600, 24 * 3600];

// Lifecycle calls in flight, per sandbox. The server may already report the target status
// while the call is still working (it records a status before acting on the host), so until
// the call returns the console shows "pausing", "resuming", … and offers no exec or terminal.
const pendingOps = new Map<string, string>();
const opListeners = new Set<() => void>();

function setPending(id: string, op: string | null) {
  if (op) pendingOps.set(id, op);
  else pendingOps.delete(id);
  opListeners.forEach((l) => l());
}

/** Runs `fn` with `op` shown as the sandbox's status meanwhile. */
export async function withPending<T>(id: string, op: string, fn: () => Promise<T>): Promise<T> {
  setPending(id, op);
  try {
    return await fn();
  } finally {
    setPending(id, null);
  }
}

/** The status to show: a call in flight from this console wins over the last poll. */
export function useShownStatus(id: string | undefined, status: string | undefined): string | undefined {
  const [, rerender] = useState(0);
  useEffect(() => {
    const l = () => rerender((n) => n + 1);
    opListeners.add(l);
    return () => {
      opListeners.delete(l);
    };
  }, []);
  return (id && pendingOps.get(id)) || status;
}

export function canPause(s: Sandbox) {
  return s.status === "running";
}
export function canResume(s: Sandbox) {
  return s.status === "paused";
}
export function isLive(s: Sandbox) {
  return s.status !== "stopped" && s.status !== "error";
}

export function SandboxActions({ sandbox, onChange, compact }: { sandbox: Sandbox; onChange: (s?: Sandbox) => void; compact?: boolean }) {
  const [busy, setBusy] = useState<string | null>(null);
  const [dialog, setDialog] = useState<"destroy" | "timeout" | "snapshot" | null>(null);
  const name = shortId(sandbox.id);
  const shown = useShownStatus(sandbox.id, sandbox.status);
  const inFlight = shown !== sandbox.status;

  const run = async (what: string, fn: () => Promise<Sandbox | void>, ok: string) => {
    setBusy(what);
    try {
      const s = await withPending(sandbox.id, what === "pause" ? "pausing" : "resuming", fn);
      toast(ok);
      onChange(s || undefined);
    } catch (e) {
      toast(`Could not ${what} sandbox ${name}: ${describe(e)}`, "error");
      onChange();
    } finally {
      setBusy(null);
    }
  };

  const size = compact ? "sm" : "md";
  return (
    <div class="btn-row">
      {canPause(sandbox) && (
        <Button size={size} busy={busy === "pause"} disabled={busy !== null || inFlight} onClick={() => run("pause", () => Api.pause(sandbox.id), `Sandbox ${name} paused.`)}>
          {busy === "pause" ? "Pausing…" : "Pause"}
        </Button>
      )}
      {canResume(sandbox) && (
        <Button size={size} variant={compact ? "secondary" : "primary"} busy={busy === "resume"} disabled={busy !== null || inFlight} onClick={() => run("resume", () => Api.resume(sandbox.id), `Sandbox ${name} resumed.`)}>
          {busy === "resume" ? "Resuming…" : "Resume"}
        </Button>
      )}
      {!compact && isLive(sandbox) && (
        <>
          <Button size={size} disabled={busy !== null || inFlight} onClick={() => setDialog("timeout")}>
            Set timeout
          </Button>
          <Button size={size} disabled={busy !== null || inFlight || !(sandbox.status === "running" || sandbox.status === "paused")} onClick={() => setDialog("snapshot")}>
            Snapshot
          </Button>
        </>
      )}
      {isLive(sandbox) && (
        <Button size={size} variant="danger" disabled={busy !== null || inFlight} onClick={() => setDialog("destroy")} aria-label={`Destroy sandbox ${sandbox.id}`}>
          Destroy
        </Button>
      )}
      <DestroyDialog open={dialog === "destroy"} sandbox={sandbox} onClose={() => setDialog(null)} onDone={() => { setDialog(null); onChange(); }} />
      <TimeoutDialog open={dialog === "timeout"} sandbox={sandbox} onClose={() => setDialog(null)} onDone={(s) => { setDialog(null); onChange(s); }} />
      <SnapshotDialog open={dialog === "snapshot"} sandbox={sandbox} onClose={() => setDialog(null)} />
    </div>
  );
}

function DestroyDialog({ open, sandbox, onClose, onDone }: { open: boolean; sandbox: Sandbox; onClose: () => void; onDone: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const destroy = async () => {
    setBusy(true);
    setError(null);
    try {
      await withPending(sandbox.id, "destroying", () => Api.destroySandbox(sandbox.id));
      toast(`Sandbox ${shortId(sandbox.id)} destroyed.`);
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title="Destroy sandbox" onClose={() => { setError(null); onClose(); }}>
      <p>
        Destroy sandbox <code>{sandbox.id}</code>? Its processes stop and its files are deleted. This cannot be undone.
      </p>
      <ErrorBox error={error} title="Could not destroy the sandbox" />
      <div class="dialog-actions">
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="danger" busy={busy} onClick={destroy}>
          {busy ? "Destroying…" : "Destroy sandbox"}
        </Button>
      </div>
    </Dialog>
  );
}

function TimeoutDialog({ open, sandbox, onClose, onDone }: { open: boolean; sandbox: Sandbox; onClose: () => void; onDone: (s?: Sandbox) => void }) {
  const [value, setValue] = useState(String(sandbox.timeout_s || 3600));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) {
      setError(new Error("The timeout must be a whole number of seconds above zero."));
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const s = await Api.setTimeout(sandbox.id, n);
      toast(`Sandbox ${shortId(sandbox.id)} now expires ${duration(n)} from now.`);
      onDone(s || undefined);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title="Set timeout" onClose={() => { setError(null); onClose(); }}>
      <form onSubmit={submit}>
        <p class="muted">
          The sandbox is stopped this long from now unless you extend it again. Setting it also works as a keep-alive.
        </p>
        <div class="field">
          <label for="timeout-s">Timeout (seconds)</label>
          <input id="timeout-s" type="number" min={1} step={1} required value={value} onInput={(e) => setValue(e.currentTarget.value)} />
          <div class="chips" role="group" aria-label="Common timeouts">
            {TIMEOUTS.map((t) => (
              <button type="button" key={t} class={`chip ${String(t) === value ? "on" : ""}`} onClick={() => setValue(String(t))}>
                {duration(t)}
              </button>
            ))}
          </div>
        </div>
        <ErrorBox error={error} title="Could not set the timeout" />
        <div class="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            Set timeout
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

export function SnapshotDialog({ open, sandbox, onClose }: { open: boolean; sandbox: Sandbox; onClose: () => void }) {
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await withPending(sandbox.id, "snapshotting", () => Api.createSnapshot(sandbox.id, name.trim()));
      toast(`Snapshot “${name.trim()}” created. New sandboxes can start from it.`);
      setName("");
      onClose();
      navigate("/console/snapshots");
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title="Create snapshot" onClose={() => { setError(null); onClose(); }}>
      <form onSubmit={submit}>
        <p class="muted">
          Saves this sandbox's memory and files as a template. Sandboxes created from it start where this one is now.
        </p>
        <div class="field">
          <label for="snap-name">Snapshot name</label>
          <input
            id="snap-name"
            required
            pattern="[a-z0-9][a-z0-9._\-]*"
            title="Lower-case letters, digits, dots, dashes and underscores"
            placeholder="e.g. python-ready"
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
          <p class="hint">Lower-case letters, digits, “.”, “-” and “_”.</p>
        </div>
        <ErrorBox error={error} title="Could not create the snapshot" />
        <div class="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            {busy ? "Snapshotting…" : "Create snapshot"}
          </Button>
        </div>
      </form>
    </Dialog>
  );
}
