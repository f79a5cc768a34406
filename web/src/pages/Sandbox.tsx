// One sandbox: overview and actions, and tabs for exec, files and terminal.
import { useEffect, useRef } from "preact/hooks";
import { Api, ApiError, Metrics, Sandbox } from "../api";
import { isLive, SandboxActions, useShownStatus } from "../components/SandboxActions";
import { ExecConsole } from "../components/ExecConsole";
import { FileBrowser } from "../components/FileBrowser";
import { TerminalView } from "../components/TerminalView";
import { CopyButton, ErrorBox, Link, Spinner, StatusBadge, Time, bytes, duration, mib, useFocusHeading, usePoll } from "../components/ui";

const TABS = [
  { id: "overview", label: "Overview" },
  { id: "exec", label: "Exec" },
  { id: "files", label: "Files" },
  { id: "terminal", label: "Terminal" },
];

export function SandboxPage({ id, tab }: { id: string; tab: string }) {
  useFocusHeading(id);
  useEffect(() => {
    document.title = `Sandbox ${id.slice(0, 8)} · Warren`;
  }, [id]);
  const sb = usePoll((s) => Api.getSandbox(id, s), 3000, [id]);
  const s = sb.data;
  const status = useShownStatus(s?.id, s?.status);
  const gone = sb.error instanceof ApiError && sb.error.status === 404;

  return (
    <>
      <nav class="crumbs" aria-label="Breadcrumb">
        <Link href="/console/sandboxes">Sandboxes</Link>
        <span aria-hidden="true">/</span>
        <span class="mono">{id}</span>
      </nav>
      <div class="page-header">
        <div>
          <h1 class="mono-title">
            Sandbox <span class="mono">{id.slice(0, 8)}</span> {s && status && <StatusBadge status={status} />}
          </h1>
          {s && (
            <p class="muted">
              {s.template} · {s.vcpus} vCPU · {mib(s.memory_mb)} · created <Time iso={s.created_at} />
            </p>
          )}
        </div>
        {s && (
          <div class="page-actions">
            <SandboxActions sandbox={s} onChange={() => void sb.reload()} />
          </div>
        )}
      </div>
      {gone ? (
        <div class="card pad">
          <h2>Sandbox not found</h2>
          <p class="muted">
            No sandbox <code>{id}</code> in your team. It may have been destroyed. <Link href="/console/sandboxes">Back to sandboxes</Link>.
          </p>
        </div>
      ) : (
        <>
          <ErrorBox error={sb.error} title={s ? "Could not refresh the sandbox (showing the last state)" : "Could not load the sandbox"} />
          {sb.loading && !s && (
            <div class="card pad center">
              <Spinner label="Loading sandbox" />
            </div>
          )}
          {s?.error && (
            <div class="alert alert-error" role="alert">
              <div>
                <strong>This sandbox failed: </strong>
                {s.error}
              </div>
            </div>
          )}
          {s && (
            <>
              <nav class="tabs" aria-label="Sandbox sections">
                {TABS.map((t) => (
                  <Link key={t.id} href={`/console/sandboxes/${id}${t.id === "overview" ? "" : `/${t.id}`}`} class={tab === t.id ? "tab active" : "tab"} aria-current={tab === t.id ? "page" : undefined}>
                    {t.label}
                  </Link>
                ))}
              </nav>
              <section class="tab-panel" aria-label={TABS.find((t) => t.id === tab)?.label ?? "Overview"}>
                {tab === "overview" && status === "running" && <Usage id={s.id} vcpus={s.vcpus} />}
                {tab === "overview" && <Overview s={s} />}
                {tab !== "overview" && !isLive(s) && <NotLive s={s} />}
                {tab !== "overview" && isLive(s) && status !== "running" && <NeedsRunning status={status ?? s.status} />}
                {tab === "exec" && status === "running" && <ExecConsole sandbox={s} />}
                {tab === "files" && status === "running" && <FileBrowser sandbox={s} />}
                {tab === "terminal" && status === "running" && <TerminalView sandbox={s} />}
                {!TABS.some((t) => t.id === tab) && <p>Unknown section “{tab}”.</p>}
              </section>
            </>
          )}
        </>
      )}
    </>
  );
}

function NotLive({ s }: { s: Sandbox }) {
  return (
    <div class="card pad">
      <p>
        This sandbox is <strong>{s.status}</strong>; it cannot run commands any more. Create a new one from the{" "}
        <Link href="/console/sandboxes">sandboxes</Link> page.
      </p>
    </div>
  );
}

function NeedsRunning({ status }: { status: string }) {
  return (
    <div class="card pad">
      <p>
        This sandbox is <strong>{status}</strong>.{" "}
        {status === "paused" ? "Resume it to run commands, browse files or open a terminal." : "Commands, files and the terminal are available once it is running."}
      </p>
    </div>
  );
}

function Overview({ s }: { s: Sandbox }) {
  const meta = Object.entries(s.metadata ?? {});
  return (
    <div class="grid-2">
      <div class="card pad">
        <h2>Details</h2>
        <dl class="details">
          <dt>ID</dt>
          <dd class="with-copy">
            <code>{s.id}</code> <CopyButton text={s.id} label="Copy ID" />
          </dd>
          <dt>Status</dt>
          <dd>
            <StatusBadge status={s.status} />
          </dd>
          <dt>Template</dt>
          <dd>{s.template}</dd>
          <dt>Resources</dt>
          <dd>
            {s.vcpus} vCPU · {mib(s.memory_mb)}
          </dd>
          <dt>Internet</dt>
          <dd>{s.allow_internet ? "allowed" : "blocked"}</dd>
          <dt>At expiry</dt>
          <dd>{s.auto_pause ? "pause" : "destroy"}</dd>
          <dt>Host</dt>
          <dd>{s.host_id ? <code>{s.host_id}</code> : <span class="muted">not placed</span>}</dd>
        </dl>
      </div>
      <div class="card pad">
        <h2>Lifetime</h2>
        <dl class="details">
          <dt>Created</dt>
          <dd>
            <Time iso={s.created_at} />
          </dd>
          <dt>Timeout</dt>
          <dd>{duration(s.timeout_s)}</dd>
          <dt>Expires</dt>
          <dd>{isLive(s) ? <Time iso={s.expires_at} /> : <span class="muted">—</span>}</dd>
        </dl>
        <h2 class="mt">Metadata</h2>
        {meta.length === 0 ? (
          <p class="muted">None.</p>
        ) : (
          <dl class="details">
            {meta.map(([k, v]) => (
              <>
                <dt key={`k-${k}`}>{k}</dt>
                <dd key={`v-${k}`}>{v}</dd>
              </>
            ))}
          </dl>
        )}
      </div>
    </div>
  );
}

/** Live usage from `GET /metrics`; CPU is the change of cumulative CPU time between polls. */
function Usage({ id, vcpus }: { id: string; vcpus: number }) {
  const prev = useRef<Metrics | null>(null);
  const cpu = useRef<number | null>(null);
  const m = usePoll(
    async (signal) => {
      const cur = await Api.metrics(id, signal);
      const p = prev.current;
      if (p) {
        const dt = Date.parse(cur.timestamp) - Date.parse(p.timestamp);
        if (dt > 0 && cur.cpu_usage_ns >= p.cpu_usage_ns) cpu.current = ((cur.cpu_usage_ns - p.cpu_usage_ns) / 1e6 / dt) * 100;
      }
      prev.current = cur;
      return cur;
    },
    3000,
    [id],
  );
  if (m.error && !m.data) return <ErrorBox error={m.error} title="Could not read usage" />;
  if (!m.data) return null;
  const d = m.data;
  const memPct = d.memory_limit_bytes > 0 ? Math.min(100, (d.memory_bytes / d.memory_limit_bytes) * 100) : 0;
  const cpuPct = cpu.current;
  return (
    <dl class="stats" aria-label="Usage">
      <div class="stat">
        <dt>CPU</dt>
        <dd>{cpuPct === null ? <span class="muted small">measuring…</span> : `${cpuPct.toFixed(cpuPct < 10 ? 1 : 0)}%`}</dd>
        <div class="muted small">of {vcpus} vCPU{vcpus === 1 ? "" : "s"} (100% = one core)</div>
      </div>
      <div class="stat">
        <dt>Memory</dt>
        <dd>{bytes(d.memory_bytes)}</dd>
        <div class="bar" role="meter" aria-label="Memory used" aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(memPct)}>
          <div style={{ width: `${memPct}%` }} class={memPct > 85 ? "hot" : ""} />
        </div>
      </div>
      <div class="stat">
        <dt>Memory limit</dt>
        <dd>{d.memory_limit_bytes > 0 ? bytes(d.memory_limit_bytes) : "none"}</dd>
      </div>
      <div class="stat">
        <dt>Disk written</dt>
        <dd>{bytes(d.disk_bytes)}</dd>
      </div>
    </dl>
  );
}
