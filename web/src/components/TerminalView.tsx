// A terminal in the sandbox: xterm.js over the PTY WebSocket (fleet contract §3). Keystrokes
// go as binary frames, resizes as JSON text frames; output arrives as binary frames and the
// end as a text frame `{"type":"exit","exit_code":N}`.
import { useEffect, useRef, useState } from "preact/hooks";
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { Sandbox, wsUrl } from "../api";
import { Button } from "./ui";

type State = { kind: "connecting" } | { kind: "open" } | { kind: "exited"; code: number | null } | { kind: "closed"; why: string };

export function TerminalView({ sandbox }: { sandbox: Sandbox }) {
  const host = useRef<HTMLDivElement>(null);
  const [state, setState] = useState<State>({ kind: "connecting" });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    const term = new Terminal({
      cursorBlink: true,
      fontFamily: 'ui-monospace, "JetBrains Mono", "DejaVu Sans Mono", Menlo, Consolas, monospace',
      fontSize: 13,
      theme: { background: "#0b1020", foreground: "#e2e8f0", cursor: "#a5b4fc", selectionBackground: "#334155" },
      scrollback: 5000,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(el);
    try {
      fit.fit();
    } catch {
      // Not laid out yet; the resize observer fits it later.
    }
    setState({ kind: "connecting" });
    const ws = new WebSocket(wsUrl(`/v1/sandboxes/${encodeURIComponent(sandbox.id)}/pty`, { cols: term.cols, rows: term.rows }));
    ws.binaryType = "arraybuffer";
    let exited = false;
    let opened = false;
    const enc = new TextEncoder();

    const sendResize = () => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
    };
    ws.onopen = () => {
      opened = true;
      setState({ kind: "open" });
      sendResize();
      term.focus();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") {
        try {
          const msg = JSON.parse(ev.data) as { type?: string; exit_code?: number; message?: string };
          if (msg.type === "exit") {
            exited = true;
            setState({ kind: "exited", code: msg.exit_code ?? null });
            term.write(`\r\n\x1b[2m[process exited with code ${msg.exit_code ?? "?"}]\x1b[0m\r\n`);
          } else if (msg.type === "error") {
            term.write(`\r\n\x1b[31m[error: ${msg.message ?? "unknown"}]\x1b[0m\r\n`);
          }
        } catch {
          term.write(ev.data);
        }
      } else {
        term.write(new Uint8Array(ev.data as ArrayBuffer));
      }
    };
    ws.onclose = (ev) => {
      if (exited) return;
      const why = opened
        ? `The terminal connection closed${ev.reason ? `: ${ev.reason}` : ""} (code ${ev.code}).`
        : `Could not open a terminal (WebSocket closed with code ${ev.code}${ev.reason ? `: ${ev.reason}` : ""}). The sandbox may have stopped, or the server refused the connection.`;
      setState({ kind: "closed", why });
    };
    const data = term.onData((d) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(d));
    });
    const binary = term.onBinary((d) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff));
    });
    const resized = term.onResize(sendResize);
    const ro = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        // Hidden: nothing to fit.
      }
    });
    ro.observe(el);

    return () => {
      ro.disconnect();
      data.dispose();
      binary.dispose();
      resized.dispose();
      ws.onclose = null;
      ws.close();
      term.dispose();
    };
  }, [sandbox.id, attempt]);

  return (
    <div class="card terminal-card">
      <div class="card-toolbar">
        <div class="small" role="status" aria-live="polite">
          {state.kind === "connecting" && (
            <span class="muted">
              <span class="spinner" aria-hidden="true" /> Connecting…
            </span>
          )}
          {state.kind === "open" && <span class="ok-text">● Connected</span>}
          {state.kind === "exited" && <span class="muted">Shell exited{state.code !== null ? ` with code ${state.code}` : ""}.</span>}
          {state.kind === "closed" && <span class="bad-text">{state.why}</span>}
        </div>
        {(state.kind === "exited" || state.kind === "closed") && (
          <Button size="sm" variant="primary" onClick={() => setAttempt((a) => a + 1)}>
            New session
          </Button>
        )}
      </div>
      <div class="terminal-wrap">
        <div class="terminal" ref={host} aria-label="Terminal" data-testid="terminal" />
      </div>
    </div>
  );
}
