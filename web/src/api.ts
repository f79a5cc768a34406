// The REST client of the console: one `request` function that adds the user's JWT, turns every
// non-2xx answer into an `ApiError` carrying the server's own words (`{"error":{"code",
// "message"}}`), and signs the user out when the token is no longer accepted. Types mirror the
// JSON the control plane sends (fleet contract §1, §2).

export interface User {
  id: string;
  email: string;
  name: string | null;
  created_at: string;
}

export interface Team {
  id: string;
  name: string;
  role: string | null;
  created_at: string;
}

export interface Session {
  token: string;
  expires_at: string;
  user: User;
  team: Team;
}

export interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  created_at: string;
  last_used_at: string | null;
  created_by: string | null;
}

export interface CreatedApiKey extends ApiKey {
  key: string;
}

export interface Sandbox {
  id: string;
  status: string;
  template: string;
  host_id: string | null;
  vcpus: number;
  memory_mb: number;
  metadata: Record<string, string>;
  env?: Record<string, string>;
  created_at: string;
  expires_at: string | null;
  timeout_s: number;
  allow_internet: boolean;
  auto_pause?: boolean;
  /** Why the sandbox is in `error`. */
  error?: string;
  envd_access_token?: string;
}

export interface CreateSandbox {
  template: string;
  vcpus: number;
  memory_mb: number;
  timeout_s: number;
  allow_internet: boolean;
  metadata?: Record<string, string>;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exit_code: number;
  encoding?: string;
}

export interface Metrics {
  sandbox_id: string;
  cpu_usage_ns: number;
  memory_bytes: number;
  memory_limit_bytes: number;
  disk_bytes: number;
  timestamp: string;
}

export interface Snapshot {
  name: string;
  sandbox_id?: string | null;
  template?: string | null;
  size_bytes?: number | null;
  status?: string | null;
  created_at?: string | null;
  [key: string]: unknown;
}

export interface Host {
  id: string;
  status: string;
  address: string | null;
  runtime: string | null;
  arch: string | null;
  cpu_count: number | null;
  memory_mb: number | null;
  disk_mb: number | null;
  sandbox_capacity: number | null;
  live_sandboxes: number | null;
  free_memory_mb: number | null;
  labels: Record<string, string> | null;
  agent_version: string | null;
  templates: string[] | null;
  last_heartbeat_at: string | null;
  created_at: string;
}

export interface CreatedHost {
  host: Host;
  registration_token: string;
  token_expires_at: string;
}

export interface RegistrationToken {
  registration_token: string;
  token_expires_at: string;
}

/** An error the console shows to the user: the server's message, or what went wrong on the way. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** The whole `error` object of the body (may carry `fields`, `sandboxes`, …). */
  readonly detail: Record<string, unknown>;

  constructor(status: number, code: string, message: string, detail: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/** Words for any error, for the screen: "what failed: why". */
export function describe(err: unknown): string {
  if (err instanceof ApiError) {
    const fields = err.detail.fields;
    let msg = err.message;
    if (Array.isArray(fields) && fields.length > 0) {
      msg = fields
        .map((f: { field?: string; message?: string }) => `${f.field ?? "input"} ${f.message ?? "is invalid"}`)
        .join("; ");
    }
    return err.status > 0 ? `${msg} (HTTP ${err.status}${err.code ? `, ${err.code}` : ""})` : msg;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

// --- session ---------------------------------------------------------------------------------

const SESSION_KEY = "warren.session";
type Listener = () => void;
const listeners = new Set<Listener>();
let current: Session | null = loadSession();

function loadSession(): Session | null {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    if (!raw) return null;
    const s = JSON.parse(raw) as Session;
    if (!s.token || (s.expires_at && Date.parse(s.expires_at) <= Date.now())) return null;
    return s;
  } catch {
    return null;
  }
}

export function session(): Session | null {
  return current;
}

/** Why the last session ended, shown once on the login page. */
export let signedOutReason: string | null = null;

export function setSession(s: Session | null, reason: string | null = null): void {
  current = s;
  signedOutReason = reason;
  try {
    if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else localStorage.removeItem(SESSION_KEY);
  } catch {
    // Private mode without storage: the session lives in memory only.
  }
  listeners.forEach((l) => l());
}

export function onSessionChange(l: Listener): () => void {
  listeners.add(l);
  return () => listeners.delete(l);
}

// --- requests --------------------------------------------------------------------------------

export interface RequestOptions {
  body?: unknown;
  /** A raw body (file upload); sent as-is with `application/octet-stream`. */
  raw?: Blob;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  /** Send no Authorization header (signup, login). */
  anonymous?: boolean;
}

export function url(path: string, query?: RequestOptions["query"]): string {
  const u = new URL(path, window.location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined) u.searchParams.set(k, String(v));
    }
  }
  return u.pathname + u.search;
}

async function send(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { Accept: "application/json" };
  let body: BodyInit | undefined;
  if (opts.raw !== undefined) {
    headers["Content-Type"] = "application/octet-stream";
    body = opts.raw;
  } else if (opts.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(opts.body);
  }
  if (!opts.anonymous && current) headers.Authorization = `Bearer ${current.token}`;
  let res: Response;
  try {
    res = await fetch(url(path, opts.query), { method, headers, body, signal: opts.signal });
  } catch (e) {
    if (e instanceof DOMException && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", `Cannot reach the Warren control plane (${(e as Error).message}).`);
  }
  if (!res.ok) throw await errorFrom(res, !opts.anonymous);
  return res;
}

/** Builds the ApiError of a failed response; a rejected token signs the user out. */
export async function errorFrom(res: Response, authenticated: boolean): Promise<ApiError> {
  let code = "";
  let message = "";
  let detail: Record<string, unknown> = {};
  const text = await res.text().catch(() => "");
  try {
    const parsed = JSON.parse(text) as { error?: Record<string, unknown> };
    if (parsed && typeof parsed.error === "object" && parsed.error) {
      detail = parsed.error;
      code = String(parsed.error.code ?? "");
      message = String(parsed.error.message ?? "");
    }
  } catch {
    // Not our error shape (a proxy in between?): show what came back.
  }
  if (!message) {
    const snippet = text.trim().slice(0, 200);
    message = snippet ? `${res.statusText || "error"}: ${snippet}` : res.statusText || "request failed";
  }
  if (res.status === 401 && authenticated && current) {
    setSession(null, `You were signed out: ${message}.`);
  }
  return new ApiError(res.status, code, message, detail);
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(method, path, opts);
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  if (!text) return undefined as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(res.status, "bad_response", `The server sent something that is not JSON: ${text.slice(0, 120)}`);
  }
}

export async function requestBlob(path: string, opts: RequestOptions = {}): Promise<Blob> {
  const res = await send("GET", path, opts);
  return res.blob();
}

/** Lists come as a bare array or inside a page object; take the first array we find. */
export function items<T>(body: unknown, ...keys: string[]): T[] {
  if (Array.isArray(body)) return body as T[];
  if (body && typeof body === "object") {
    const o = body as Record<string, unknown>;
    for (const k of [...keys, "items", "data", "results"]) {
      if (Array.isArray(o[k])) return o[k] as T[];
    }
    for (const v of Object.values(o)) {
      if (Array.isArray(v)) return v as T[];
    }
  }
  return [];
}

export function wsUrl(path: string, query: Record<string, string | number | undefined>): string {
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  const q = { ...query, access_token: current?.token };
  return `${proto}//${window.location.host}${url(path, q)}`;
}

// --- endpoints -------------------------------------------------------------------------------

const enc = encodeURIComponent;

export const Api = {
  signup: (email: string, password: string, name?: string) =>
    request<Session>("POST", "/v1/auth/signup", { body: { email, password, name: name || undefined }, anonymous: true }),
  login: (email: string, password: string) =>
    request<Session>("POST", "/v1/auth/login", { body: { email, password }, anonymous: true }),

  listKeys: () => request<ApiKey[]>("GET", "/v1/api-keys"),
  createKey: (name: string) => request<CreatedApiKey>("POST", "/v1/api-keys", { body: { name } }),
  deleteKey: (id: string) => request<void>("DELETE", `/v1/api-keys/${enc(id)}`),

  /** Live sandboxes (the server's default), or every status with `all`. */
  listSandboxes: async (signal?: AbortSignal, all = false) =>
    items<Sandbox>(
      await request<unknown>("GET", "/v1/sandboxes", {
        signal,
        query: { limit: 100, status: all ? "pending,running,paused,missing,stopped,error" : undefined },
      }),
      "items",
      "sandboxes",
    ),
  getSandbox: (id: string, signal?: AbortSignal) => request<Sandbox>("GET", `/v1/sandboxes/${enc(id)}`, { signal }),
  createSandbox: (req: CreateSandbox) => request<Sandbox>("POST", "/v1/sandboxes", { body: req }),
  destroySandbox: (id: string) => request<void>("DELETE", `/v1/sandboxes/${enc(id)}`),
  pause: (id: string) => request<Sandbox>("POST", `/v1/sandboxes/${enc(id)}/pause`),
  resume: (id: string) => request<Sandbox>("POST", `/v1/sandboxes/${enc(id)}/resume`, { body: {} }),
  setTimeout: (id: string, timeout_s: number) =>
    request<Sandbox>("POST", `/v1/sandboxes/${enc(id)}/timeout`, { body: { timeout_s } }),
  metrics: (id: string, signal?: AbortSignal) => request<Metrics>("GET", `/v1/sandboxes/${enc(id)}/metrics`, { signal }),
  exec: (id: string, cmd: string, timeout_s = 60) =>
    request<ExecResult>("POST", `/v1/sandboxes/${enc(id)}/exec`, { body: { cmd, timeout_s } }),
  upload: (id: string, path: string, file: Blob) =>
    request<unknown>("PUT", `/v1/sandboxes/${enc(id)}/files`, { query: { path }, raw: file }),
  download: (id: string, path: string) => requestBlob(`/v1/sandboxes/${enc(id)}/files`, { query: { path } }),

  listSnapshots: async () => items<Snapshot>(await request<unknown>("GET", "/v1/snapshots"), "snapshots", "templates"),
  createSnapshot: (sandbox_id: string, name: string) =>
    request<Snapshot>("POST", "/v1/snapshots", { body: { sandbox_id, name } }),
  deleteSnapshot: (name: string) => request<void>("DELETE", `/v1/snapshots/${enc(name)}`),

  listHosts: async (signal?: AbortSignal) => items<Host>(await request<unknown>("GET", "/v1/hosts", { signal }), "hosts"),
  createHost: (address: string | undefined) =>
    request<CreatedHost>("POST", "/v1/hosts", { body: address ? { address } : {} }),
  hostToken: (id: string) => request<RegistrationToken>("POST", `/v1/hosts/${enc(id)}/token`),
  deleteHost: (id: string, force: boolean) =>
    request<void>("DELETE", `/v1/hosts/${enc(id)}`, { query: force ? { force: "true" } : undefined }),
};

/** The bytes of a base64 string (the `data` of exec stream events). */
export function b64bytes(data: string): Uint8Array {
  const bin = atob(data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

export interface StreamEvent {
  type: "stdout" | "stderr" | "exit" | "error" | string;
  data?: string;
  exit_code?: number;
  message?: string;
}

/**
 * Runs `cmd` through `GET /v1/sandboxes/{id}/exec/stream` as server-sent events, read with
 * fetch (not EventSource) so the JWT goes in a header and an error answer is read, not retried.
 */
export async function execStream(
  id: string,
  cmd: string,
  onEvent: (e: StreamEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await send("GET", `/v1/sandboxes/${enc(id)}/exec/stream`, { query: { cmd }, signal });
  if (!res.body) throw new ApiError(res.status, "bad_response", "The server sent no stream.");
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let sep: number;
    while ((sep = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, sep);
      buf = buf.slice(sep).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, ""))
        .join("\n");
      if (!data) continue;
      try {
        onEvent(JSON.parse(data) as StreamEvent);
      } catch {
        onEvent({ type: "error", message: `unreadable event: ${data.slice(0, 80)}` });
      }
    }
  }
}
