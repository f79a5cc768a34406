// Browse a sandbox's files: the listing comes from `stat` run through exec (the REST API has
// no list route); upload is `PUT /files?path=` with the raw file, download `GET /files?path=`.
import { useEffect, useRef, useState } from "preact/hooks";
import { Api, ApiError, ExecResult, Sandbox, describe } from "../api";
import { Button, ErrorBox, Spinner, bytes, toast } from "./ui";
import { FileIcon, FolderIcon, LinkIcon, UpIcon } from "./Icons";

interface Entry {
  name: string;
  kind: "dir" | "file" | "link" | "other";
  size: number;
  mtime: number;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

function parent(dir: string): string {
  const p = dir.replace(/\/+$/, "").split("/").slice(0, -1).join("/");
  return p || "/";
}

function text(r: ExecResult, s: string): string {
  if (r.encoding === "base64") {
    try {
      return new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
    } catch {
      return s;
    }
  }
  return s;
}

/** One `stat` over the directory's entries (hidden ones too); busybox and GNU both print this. */
async function list(id: string, dir: string): Promise<Entry[]> {
  const script = `cd -- ${shellQuote(dir)} || exit 3; stat -c '%F|%s|%Y|%n' -- .[!.]* ..?* * 2>/dev/null; exit 0`;
  const r = await Api.exec(id, script, 30);
  if (r.exit_code !== 0) {
    const err = text(r, r.stderr).trim().replace(/^.*?cd: /, "");
    throw new ApiError(0, "exec", `cannot open ${dir}: ${err || `exit code ${r.exit_code}`}`);
  }
  const out: Entry[] = [];
  for (const line of text(r, r.stdout).split("\n")) {
    const m = /^([^|]*)\|(\d+)\|(\d+)\|(.*)$/.exec(line);
    if (!m) continue;
    const [, type, size, mtime, name] = m;
    const kind = type === "directory" ? "dir" : type.includes("regular") ? "file" : type.includes("link") ? "link" : "other";
    out.push({ name, kind, size: Number(size), mtime: Number(mtime) });
  }
  out.sort((a, b) => (a.kind === "dir") !== (b.kind === "dir") ? (a.kind === "dir" ? -1 : 1) : a.name.localeCompare(b.name));
  return out;
}

export function FileBrowser({ sandbox }: { sandbox: Sandbox }) {
  const [dir, setDir] = useState("/tmp");
  const [pathInput, setPathInput] = useState("/tmp");
  const [entries, setEntries] = useState<Entry[] | null>(null);
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [uploading, setUploading] = useState<string | null>(null);
  const [downloading, setDownloading] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);

  const load = async (d: string) => {
    setLoading(true);
    setError(null);
    try {
      const e = await list(sandbox.id, d);
      setEntries(e);
      setDir(d);
      setPathInput(d);
    } catch (err) {
      setError(err);
      setPathInput(dir);
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    void load(dir);
  }, [sandbox.id]);

  const upload = async (files: FileList | null) => {
    if (!files || files.length === 0) return;
    for (const f of Array.from(files)) {
      const path = joinPath(dir, f.name);
      setUploading(f.name);
      try {
        await Api.upload(sandbox.id, path, f);
        toast(`Uploaded ${f.name} (${bytes(f.size)}) to ${path}.`);
      } catch (err) {
        toast(`Could not upload ${f.name}: ${describe(err)}`, "error");
        setError(new ApiError(err instanceof ApiError ? err.status : 0, err instanceof ApiError ? err.code : "", `upload of ${f.name} failed: ${err instanceof Error ? err.message : String(err)}`));
      }
    }
    setUploading(null);
    if (fileInput.current) fileInput.current.value = "";
    await load(dir);
  };

  const download = async (path: string) => {
    setDownloading(path);
    try {
      const blob = await Api.download(sandbox.id, path);
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = path.split("/").pop() || "download";
      document.body.appendChild(a);
      a.click();
      a.remove();
      window.setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
    } catch (err) {
      toast(`Could not download ${path}: ${describe(err)}`, "error");
    } finally {
      setDownloading(null);
    }
  };

  const crumbs = dir.split("/").filter(Boolean);

  return (
    <div class="card">
      <div class="card-toolbar files-toolbar">
        <form
          class="path-form"
          onSubmit={(e) => {
            e.preventDefault();
            void load(pathInput.trim() || "/");
          }}
        >
          <label for="files-path" class="sr-only">
            Directory
          </label>
          <input id="files-path" class="mono" value={pathInput} onInput={(e) => setPathInput(e.currentTarget.value)} spellcheck={false} />
          <Button type="submit" size="sm" busy={loading}>
            Open
          </Button>
        </form>
        <div class="btn-row">
          <input
            ref={fileInput}
            id="files-upload"
            type="file"
            multiple
            class="sr-only"
            tabIndex={-1}
            aria-label={`Files to upload to ${dir}`}
            onChange={(e) => void upload(e.currentTarget.files)}
          />
          <Button size="sm" variant="primary" busy={uploading !== null} onClick={() => fileInput.current?.click()}>
            {uploading ? `Uploading ${uploading}…` : `Upload to ${dir}`}
          </Button>
        </div>
      </div>
      <nav class="crumbs pad-x" aria-label="Current directory">
        <button type="button" class="link" onClick={() => void load("/")}>
          /
        </button>
        {crumbs.map((c, i) => {
          const p = `/${crumbs.slice(0, i + 1).join("/")}`;
          return (
            <>
              {i > 0 && <span aria-hidden="true">/</span>}
              <button type="button" class="link" onClick={() => void load(p)} aria-current={i === crumbs.length - 1 ? "location" : undefined}>
                {c}
              </button>
            </>
          );
        })}
      </nav>
      <div class="pad-x">
        <ErrorBox error={error} onDismiss={() => setError(null)} />
      </div>
      {entries === null && loading ? (
        <div class="pad center">
          <Spinner label="Listing files" />
        </div>
      ) : entries ? (
        <div class="table-wrap">
          <table class="files" aria-busy={loading ? "true" : undefined}>
            <caption class="sr-only">Files in {dir}</caption>
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col" class="num">
                  Size
                </th>
                <th scope="col">Modified</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {dir !== "/" && (
                <tr>
                  <td colSpan={4}>
                    <button type="button" class="link file-name" onClick={() => void load(parent(dir))}>
                      <UpIcon /> ..
                    </button>
                  </td>
                </tr>
              )}
              {entries.length === 0 && (
                <tr>
                  <td colSpan={4} class="muted">
                    This directory is empty.
                  </td>
                </tr>
              )}
              {entries.map((f) => {
                const path = joinPath(dir, f.name);
                return (
                  <tr key={f.name} data-file={f.name}>
                    <td>
                      {f.kind === "dir" || f.kind === "link" ? (
                        <button type="button" class="link file-name" onClick={() => void load(path)}>
                          {f.kind === "dir" ? <FolderIcon /> : <LinkIcon />} {f.name}
                          {f.kind === "dir" ? "/" : ""}
                        </button>
                      ) : (
                        <span class="file-name">
                          <FileIcon /> {f.name}
                        </span>
                      )}
                    </td>
                    <td class="num">{f.kind === "file" ? bytes(f.size) : ""}</td>
                    <td>{new Date(f.mtime * 1000).toLocaleString()}</td>
                    <td class="actions">
                      {f.kind === "file" && (
                        <Button size="sm" busy={downloading === path} onClick={() => void download(path)} aria-label={`Download ${f.name}`}>
                          Download
                        </Button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      ) : null}
    </div>
  );
}
