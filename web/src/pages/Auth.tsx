// Sign up and log in: the two pages a new user sees first.
import { useEffect, useRef, useState } from "preact/hooks";
import { Api, setSession, signedOutReason } from "../api";
import { Button, ErrorBox, Link } from "../components/ui";
import { Logo } from "../components/Logo";

export function AuthPage({ mode }: { mode: "login" | "signup" }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [name, setName] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const emailRef = useRef<HTMLInputElement>(null);
  const signup = mode === "signup";

  useEffect(() => {
    setError(null);
    emailRef.current?.focus();
    document.title = signup ? "Sign up · Warren" : "Log in · Warren";
  }, [mode]);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const s = signup ? await Api.signup(email, password, name.trim() || undefined) : await Api.login(email, password);
      setSession(s);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return (
    <div class="auth">
      <div class="auth-card card">
        <div class="auth-brand">
          <Logo size={40} />
          <div>
            <div class="auth-name">Warren</div>
            <div class="muted small">Sandboxes for untrusted code</div>
          </div>
        </div>
        <h1>{signup ? "Create your account" : "Log in"}</h1>
        {!signup && signedOutReason && <p class="alert alert-info">{signedOutReason}</p>}
        <form onSubmit={submit} noValidate={false}>
          {signup && (
            <div class="field">
              <label for="name">
                Name <span class="muted">(optional)</span>
              </label>
              <input id="name" name="name" autoComplete="name" value={name} onInput={(e) => setName(e.currentTarget.value)} />
            </div>
          )}
          <div class="field">
            <label for="email">Email</label>
            <input
              ref={emailRef}
              id="email"
              name="email"
              type="email"
              autoComplete={signup ? "email" : "username"}
              required
              value={email}
              onInput={(e) => setEmail(e.currentTarget.value)}
            />
          </div>
          <div class="field">
            <label for="password">Password</label>
            <input
              id="password"
              name="password"
              type="password"
              autoComplete={signup ? "new-password" : "current-password"}
              required
              minLength={signup ? 8 : undefined}
              aria-describedby={signup ? "password-hint" : undefined}
              value={password}
              onInput={(e) => setPassword(e.currentTarget.value)}
            />
            {signup && (
              <p id="password-hint" class="hint">
                At least 8 characters.
              </p>
            )}
          </div>
          <ErrorBox error={error} title={signup ? "Could not sign up" : "Could not log in"} />
          <Button type="submit" variant="primary" busy={busy} class="wide">
            {signup ? (busy ? "Creating account…" : "Create account") : busy ? "Logging in…" : "Log in"}
          </Button>
        </form>
        <p class="auth-switch">
          {signup ? (
            <>
              Already have an account? <Link href="/console/login">Log in</Link>
            </>
          ) : (
            <>
              New to Warren? <Link href="/console/signup">Create an account</Link>
            </>
          )}
        </p>
      </div>
    </div>
  );
}
