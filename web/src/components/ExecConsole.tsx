// Run a shell line in the sandbox and watch its output arrive (exec stream, server-sent events).
import { useEffect, useRef, useState } from "preact/hooks";
import { Sandbox, StreamEvent, b64bytes, describe, execStream } from "../api";
import { Button } from "./ui";

interface Chunk {
  stream: "stdout" | "stderr" | "info";
  text: string;
}

interface Run {
  id: number;
  cmd: string;
  chunks: Chunk[];
  exit: number | null;
  error: string | null;
  running: boolean;
}

let runSeq = 0;

export function ExecConsole({ sandbox }: { sandbox: Sandbox }) {
  const [cmd, setCmd] = useState("");
  const [runs, setRuns] = useState<Run[]>([]);
  const [history, setHistory] = useState<string[]>([]);
  const [histPos, setHistPos] = useState(-1);
  const ctl = useRef<AbortController | null>(null);
  const out = useRef<HTMLDivElement>(null);
  const input = useRef<HTMLInputElement>(null);
  const running = runs.some((r) => r.running);

  useEffect(() => {
    input.current?.focus();
    return () => ctl.current?.abort();
  }, []);
  useEffect(() => {
    if (out.current) out.current.scrollTop = out.current.scrollHeight;
  }, [runs]);

  const update = (id: number, f: (r: Run) => Run) => setRuns((rs) => rs.map((r) => (r.id === id ? f(r) : r)));

  const run = async (e: Event) => {
    e.preventDefault();
    const line = cmd.trim();
    if (!line || running) return;
    const id = ++runSeq;
    setRuns((rs) => [...rs.slice(-30), { id, cmd: line, chunks: [], exit: null, error: null, running: true }]);
    setHistory((h) => [line, ...h.filter((x) => x !== line)].slice(0, 50));
    setHistPos(-1);
    setCmd("");
    const c = new AbortController();
    ctl.current = c;
    const decoders = { stdout: new TextDecoder(), stderr: new TextDecoder() };
    try {
      await execStream(
        sandbox.id,
        line,
        (ev: StreamEvent) => {
          if ((ev.type === "stdout" || ev.type === "stderr") && ev.data !== undefined) {
            const text = decoders[ev.type].decode(b64bytes(ev.data), { stream: true });
            const stream = ev.type;
            update(id, (r) => ({ ...r, chunks: [...r.chunks, { stream, text }] }));
          } else if (ev.type === "exit") {
            update(id, (r) => ({ ...r, exit: ev.exit_code ?? null }));
          } else if (ev.type === "error") {
            update(id, (r) => ({ ...r, error: ev.message ?? "the command failed" }));
          }
        },
        c.signal,
      );
      update(id, (r) => ({
        ...r,
        running: false,
        error: r.exit === null && !r.error ? "The stream ended before the command reported an exit code." : r.error,
      }));
    } catch (err) {
      const aborted = c.signal.aborted;
      update(id, (r) => ({ ...r, running: false, error: aborted ? "Stopped: the console stopped listening (the command may still run)." : describe(err) }));
    } finally {
      input.current?.focus();
    }
  };

  const onKey = (e: KeyboardEvent) => {
    if (e.key === "ArrowUp" && history.length) {
      e.preventDefault();
      const p = Math.min(histPos + 1, history.length - 1);
      setHistPos(p);
      setCmd(history[p]);
    } else if (e.key === "ArrowDown" && histPos >= 0) {
      e.preventDefault();
      const p = histPos - 1;
      setHistPos(p);
      setCmd(p >= 0 ? history[p] : "");
    }
  };

  return (
    <div class="card">
      <form class="exec-form" onSubmit={run}>
        <label for="exec-cmd" class="sr-only">
          Command
        </label>
        <span class="prompt" aria-hidden="true">
          $
        </span>
        <input
          ref={input}
          id="exec-cmd"
          class="mono"
          autoComplete="off"
          spellcheck={false}
          placeholder="echo hello from the sandbox"
          value={cmd}
          onInput={(e) => setCmd(e.currentTarget.value)}
          onKeyDown={onKey}
          aria-describedby="exec-hint"
        />
        {running ? (
          <Button variant="danger" onClick={() => ctl.current?.abort()}>
            Stop
          </Button>
        ) : (
          <Button type="submit" variant="primary" disabled={!cmd.trim()}>
            Run
          </Button>
        )}
      </form>
      <p id="exec-hint" class="hint pad-x">
        Runs with <code>/bin/sh -c</code>; output streams as it comes. ↑/↓ recall earlier commands.
      </p>
      <div class="exec-output" ref={out} role="log" aria-live="polite" aria-label="Command output" data-testid="exec-output">
        {runs.length === 0 && <div class="muted">Output appears here.</div>}
        {runs.map((r) => (
          <div key={r.id} class="exec-run">
            <div class="exec-cmd">
              <span aria-hidden="true">$ </span>
              {r.cmd}
            </div>
            {r.chunks.map((c, i) => (
              <span key={i} class={`out-${c.stream}`}>
                {c.text}
              </span>
            ))}
            {r.running && (
              <div class="exec-status muted">
                <span class="spinner" aria-hidden="true" /> running…
              </div>
            )}
            {r.exit !== null && (
              <div class={`exec-status ${r.exit === 0 ? "ok" : "bad"}`} data-exit-code={r.exit}>
                exit code {r.exit}
              </div>
            )}
            {r.error && (
              <div class="exec-status bad" role="alert">
                {r.error}
              </div>
            )}
          </div>
        ))}
      </div>
    </div>
  );
}
