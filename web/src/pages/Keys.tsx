// API keys of the current team: create (the secret is shown once), list, delete.
import { useState } from "preact/hooks";
import { Api, ApiKey, CreatedApiKey, describe } from "../api";
import { Button, CopyButton, Dialog, Empty, ErrorBox, PageHeader, Spinner, Time, toast, useFocusHeading, usePoll } from "../components/ui";

export function KeysPage() {
  useFocusHeading("keys");
  document.title = "API keys · Warren";
  const keys = usePoll((_s) => Api.listKeys(), 0);
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<CreatedApiKey | null>(null);
  const [deleting, setDeleting] = useState<ApiKey | null>(null);

  return (
    <>
      <PageHeader
        title="API keys"
        description="Keys let programs (the CLI, SDKs, curl) act for your team. Send one as the X-API-Key header."
        actions={
          <Button variant="primary" onClick={() => setCreating(true)}>
            Create key
          </Button>
        }
      />
      {created && <NewKey created={created} onDone={() => setCreated(null)} />}
      <ErrorBox error={keys.error} title="Could not load API keys" />
      <div class="card">
        {keys.loading && !keys.data ? (
          <div class="pad center">
            <Spinner label="Loading API keys" />
          </div>
        ) : keys.data && keys.data.length === 0 ? (
          <Empty title="No API keys yet">
            <p class="muted">Create a key to call the REST API or use the SDK.</p>
          </Empty>
        ) : keys.data ? (
          <div class="table-wrap">
            <table>
              <caption class="sr-only">API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Key</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {keys.data.map((k) => (
                  <tr key={k.id}>
                    <td class="strong">{k.name}</td>
                    <td>
                      <code>{k.prefix}…</code>
                    </td>
                    <td>
                      <Time iso={k.created_at} />
                    </td>
                    <td>
                      <Time iso={k.last_used_at} />
                    </td>
                    <td class="actions">
                      <Button size="sm" variant="danger" onClick={() => setDeleting(k)} aria-label={`Delete key ${k.name}`}>
                        Delete
                      </Button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </div>
      <CreateKeyDialog
        open={creating}
        onClose={() => setCreating(false)}
        onCreated={(k) => {
          setCreating(false);
          setCreated(k);
          void keys.reload();
        }}
      />
      <DeleteKeyDialog
        apiKey={deleting}
        onClose={() => setDeleting(null)}
        onDeleted={() => {
          setDeleting(null);
          void keys.reload();
        }}
      />
    </>
  );
}

function NewKey({ created, onDone }: { created: CreatedApiKey; onDone: () => void }) {
  const origin = window.location.origin;
  return (
    <section class="card pad new-key" aria-labelledby="new-key-title">
      <h2 id="new-key-title">Key “{created.name}” created</h2>
      <p>
        Copy it now: this is the only time Warren shows it. It is stored as a hash and cannot be shown again.
      </p>
      <div class="secret">
        <code data-testid="new-api-key">{created.key}</code>
        <CopyButton text={created.key} label="Copy key" />
      </div>
      <p class="muted small">Try it:</p>
      <pre class="snippet">{`curl -H 'X-API-Key: ${created.key}' ${origin}/v1/sandboxes`}</pre>
      <Button size="sm" onClick={onDone}>
        I have saved it
      </Button>
    </section>
  );
}

function CreateKeyDialog({ open, onClose, onCreated }: { open: boolean; onClose: () => void; onCreated: (k: CreatedApiKey) => void }) {
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const k = await Api.createKey(name.trim());
      setName("");
      onCreated(k);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={open} title="Create API key" onClose={onClose}>
      <form onSubmit={submit}>
        <div class="field">
          <label for="key-name">Name</label>
          <input id="key-name" required maxLength={100} placeholder="e.g. CI pipeline" value={name} onInput={(e) => setName(e.currentTarget.value)} />
          <p class="hint">A label for you; the key itself is generated.</p>
        </div>
        <ErrorBox error={error} title="Could not create the key" />
        <div class="dialog-actions">
          <Button onClick={onClose}>Cancel</Button>
          <Button type="submit" variant="primary" busy={busy}>
            Create key
          </Button>
        </div>
      </form>
    </Dialog>
  );
}

function DeleteKeyDialog({ apiKey, onClose, onDeleted }: { apiKey: ApiKey | null; onClose: () => void; onDeleted: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const del = async () => {
    if (!apiKey) return;
    setBusy(true);
    setError(null);
    try {
      await Api.deleteKey(apiKey.id);
      toast(`Key “${apiKey.name}” deleted.`);
      onDeleted();
    } catch (err) {
      setError(err);
      toast(`Could not delete the key: ${describe(err)}`, "error");
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog open={apiKey !== null} title="Delete API key" onClose={() => { setError(null); onClose(); }}>
      <p>
        Delete <strong>{apiKey?.name}</strong> (<code>{apiKey?.prefix}…</code>)? Programs using it stop working at once.
      </p>
      <ErrorBox error={error} title="Could not delete the key" />
      <div class="dialog-actions">
        <Button onClick={onClose}>Cancel</Button>
        <Button variant="danger" busy={busy} onClick={del}>
          Delete key
        </Button>
      </div>
    </Dialog>
  );
}
