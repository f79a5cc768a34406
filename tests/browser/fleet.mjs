// A real Warren on this machine for the browser tests: `warren server` (SQLite, port 0) and one
// `warren agent` registered through the same token flow a remote host uses (admin creates the
// host, the agent trades the one-time token), with the `minimal` template built into its own
// data dir. Own temp dir, own netns prefix and address pool, so it runs beside other tests.
// `stop()` destroys what is left (sandboxes, processes, netns, nft table, mounts, loop devices,
// the temp dir), and only what it made.
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(new URL("../..", import.meta.url).pathname);

/** Why this machine cannot run the browser test, or null. */
export function skipReason() {
  if (process.getuid && process.getuid() !== 0) return "needs root (the agent manages netns, mounts and runsc)";
  if (!which("runsc")) return "runsc (gVisor) is not installed";
  const chromium = chromiumPath();
  if (!chromium) return "chromium is not installed (apt-get install -y chromium), or set CHROMIUM=/path";
  const warren = warrenBin();
  if (!existsSync(warren)) return `the warren binary is missing at ${warren} (cargo build -p warren, or set WARREN_BIN)`;
  const envd = envdBin();
  if (!envd) return "no static envd (RUSTFLAGS='-C target-feature=+crt-static' cargo build -p envd --target x86_64-unknown-linux-gnu, or set WARREN_ENVD)";
  return null;
}

export function chromiumPath() {
  for (const p of [process.env.CHROMIUM, "/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
    if (p && existsSync(p)) return p;
  }
  return null;
}

export function warrenBin() {
  return process.env.WARREN_BIN ? resolve(process.env.WARREN_BIN) : join(REPO, "target/debug/warren");
}

/** envd is PID 1 on a bare busybox rootfs: it must be the static build. */
export function envdBin() {
  if (process.env.WARREN_ENVD) return existsSync(process.env.WARREN_ENVD) ? resolve(process.env.WARREN_ENVD) : null;
  let host = "x86_64-unknown-linux-gnu";
  try {
    host = /host: (\S+)/.exec(execFileSync("rustc", ["-vV"], { encoding: "utf8" }))?.[1] ?? host;
  } catch {
    // No rustc: keep the usual triple.
  }
  const p = join(REPO, "target", host, "debug/envd");
  return existsSync(p) ? p : null;
}

function which(cmd) {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin"])) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A child process whose output is kept (for failures) and scanned for a line. */
class Proc {
  constructor(name, args, env, logDir) {
    this.name = name;
    this.lines = [];
    this.child = spawn(warrenBin(), ["--log-format", "text", ...args], {
      env: { ...process.env, WARREN_LOG: process.env.WARREN_LOG ?? "info", NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.exited = new Promise((r) => this.child.once("exit", (code, sig) => r({ code, sig })));
    const onData = (buf) => {
      for (const line of buf.toString().split("\n")) if (line.trim()) this.lines.push(line.replace(/\x1b\[[0-9;]*m/g, ""));
      if (this.lines.length > 4000) this.lines.splice(0, 1000);
    };
    this.child.stdout.on("data", onData);
    this.child.stderr.on("data", onData);
    this.logDir = logDir;
  }

  tail(n = 40) {
    return `--- last lines of ${this.name} ---\n${this.lines.slice(-n).join("\n")}`;
  }

  /** Waits for a log line matching `re`; fails early if the process exits. */
  async waitFor(re, ms, what) {
    const deadline = Date.now() + ms;
    let done = false;
    this.exited.then(() => (done = true));
    for (;;) {
      for (const l of this.lines) {
        const m = re.exec(l);
        if (m) return m;
      }
      if (done) throw new Error(`${this.name} exited before ${what}\n${this.tail()}`);
      if (Date.now() > deadline) throw new Error(`${this.name}: no ${what} within ${ms} ms\n${this.tail()}`);
      await sleep(50);
    }
  }

  async stop(ms = 15000) {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill("SIGTERM");
    const t = setTimeout(() => this.child.kill("SIGKILL"), ms);
    await this.exited;
    clearTimeout(t);
  }
}

async function api(base, method, path, { token, body } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return json;
}

function run(cmd, args, { quiet = true } = {}) {
  try {
    return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", quiet ? "ignore" : "inherit"] });
  } catch {
    return "";
  }
}

export class Fleet {
  static async start() {
    const f = new Fleet();
    try {
      await f.#start();
    } catch (e) {
      await f.stop();
      throw e;
    }
    return f;
  }

  constructor() {
    this.root = mkdtempSync(join(tmpdir(), "warren-browser-"));
    this.cpDir = join(this.root, "control-plane");
    this.agentDir = join(this.root, "agent");
    mkdirSync(this.cpDir);
    mkdirSync(this.agentDir);
    const n = process.pid % 1000;
    this.netPrefix = `wb${n}`;
    this.netPool = `10.251.${(process.pid % 64) * 4}.0/22`;
    this.adminEmail = "admin@browser.test";
    this.adminPassword = `pw-${process.pid}-${Date.now()}`;
    this.procs = [];
    /** User JWTs whose sandboxes `stop()` destroys. */
    this.tokens = [];
  }

  async #start() {
    const t0 = Date.now();
    execFileSync(warrenBin(), ["template", "build", "minimal", "--data-dir", this.agentDir, "--envd", envdBin()], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    this.server = new Proc("warren server", ["server", "--listen", "127.0.0.1:0", "--data-dir", this.cpDir], {
      WARREN_ADMIN_EMAIL: this.adminEmail,
      WARREN_ADMIN_PASSWORD: this.adminPassword,
      WARREN_HEARTBEAT_TIMEOUT_MS: "15000",
      WARREN_MONITOR_INTERVAL_MS: "1000",
    });
    this.procs.push(this.server);
    const m = await this.server.waitFor(/listening.*address[=":]+\s*"?(\d+\.\d+\.\d+\.\d+:\d+)/, 60000, "a listening address");
    this.base = `http://${m[1]}`;
    this.adminToken = (await api(this.base, "POST", "/v1/auth/login", { body: { email: this.adminEmail, password: this.adminPassword } })).token;
    const host = await api(this.base, "POST", "/v1/hosts", { token: this.adminToken, body: { labels: { suite: "browser" } } });
    this.hostId = host.host.id;
    this.agent = new Proc(
      "warren agent",
      [
        "agent",
        "--listen", "127.0.0.1:0",
        "--address", "127.0.0.1:0",
        "--data-dir", this.agentDir,
        "--register", host.registration_token,
        "--control-plane", this.base,
        "--net-prefix", this.netPrefix,
        "--net-pool", this.netPool,
        "--heartbeat-interval-ms", "1000",
      ],
      {},
    );
    this.procs.push(this.agent);
    const deadline = Date.now() + 90000;
    for (;;) {
      const h = await api(this.base, "GET", `/v1/hosts/${this.hostId}`, { token: this.adminToken }).catch(() => null);
      if (h && h.status === "online" && (h.templates ?? []).includes("minimal")) break;
      if (this.agent.child.exitCode !== null) throw new Error(`the agent exited\n${this.agent.tail()}`);
      if (Date.now() > deadline) throw new Error(`host not online with minimal within 90 s: ${JSON.stringify(h)}\n${this.agent.tail()}\n${this.server.tail()}`);
      await sleep(200);
    }
    this.startedInMs = Date.now() - t0;
  }

  logs() {
    return this.procs.map((p) => p.tail(60)).join("\n");
  }

  /** Destroys every sandbox the test's users still have, then everything else we made. */
  async stop() {
    if (this.base) {
      for (const token of this.tokens) {
        try {
          const page = await api(this.base, "GET", "/v1/sandboxes?status=pending,running,paused,missing", { token });
          for (const s of page.items ?? []) {
            await api(this.base, "DELETE", `/v1/sandboxes/${s.id}`, { token }).catch((e) => console.error(`cleanup: ${e.message}`));
          }
        } catch (e) {
          console.error(`cleanup: ${e.message}`);
        }
      }
    }
    for (const p of [...this.procs].reverse()) await p.stop();
    // What a crashed agent could leave behind, found by names that are ours only.
    const runscRoot = join(this.agentDir, "runsc");
    if (existsSync(runscRoot)) {
      for (const id of run("runsc", ["--root", runscRoot, "list", "-q"]).split("\n").filter(Boolean)) {
        run("runsc", ["--root", runscRoot, "kill", id, "KILL"]);
        run("runsc", ["--root", runscRoot, "delete", "-force", id]);
      }
    }
    for (const line of run("ip", ["netns", "list"]).split("\n")) {
      const ns = line.split(" ")[0];
      if (ns && ns.startsWith(`${this.netPrefix}-`)) run("ip", ["netns", "del", ns]);
    }
    run("nft", ["delete", "table", "ip", this.netPrefix]);
    const mounts = readFileSync("/proc/self/mounts", "utf8")
      .split("\n")
      .map((l) => l.split(" ")[1])
      .filter((m) => m && m.startsWith(this.root))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) run("umount", ["-l", m]);
    for (const line of run("losetup", ["-a"]).split("\n")) {
      if (line.includes(this.root)) run("losetup", ["-d", line.split(":")[0]]);
    }
    rmSync(this.root, { recursive: true, force: true });
  }
}
