// Entry point of the Warren console: session gate, app shell (sidebar + content) and routes.
import "@xterm/xterm/css/xterm.css";
import "./styles.css";
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, Api, onSessionChange, session, setSession } from "./api";
import { match, navigate, usePath } from "./router";
import { Link, Toasts } from "./components/ui";
import { Logo } from "./components/Logo";
import { AuthPage } from "./pages/Auth";
import { KeysPage } from "./pages/Keys";
import { SandboxesPage } from "./pages/Sandboxes";
import { SandboxPage } from "./pages/Sandbox";
import { SnapshotsPage } from "./pages/Snapshots";
import { HostsPage } from "./pages/Hosts";

function useSession() {
  const [s, setS] = useState(session());
  useEffect(() => onSessionChange(() => setS(session())), []);
  return s;
}

/** Whether the user may see hosts: asked of the server (403 = not an admin), not guessed. */
function useIsAdmin(token: string | undefined): boolean {
  const [admin, setAdmin] = useState(false);
  useEffect(() => {
    setAdmin(false);
    if (!token) return;
    const c = new AbortController();
    Api.listHosts(c.signal).then(
      () => setAdmin(true),
      (e) => {
        if (!(e instanceof ApiError) || (e.status !== 403 && e.status !== 404)) {
          // Unknown: show the page, which will show the error in words.
          if (!c.signal.aborted) setAdmin(true);
        }
      },
    );
    return () => c.abort();
  }, [token]);
  return admin;
}

const NAV = [
  { href: "/console/sandboxes", label: "Sandboxes", icon: "M4 5h16v10H4zM8 19h8M12 15v4" },
  { href: "/console/snapshots", label: "Snapshots", icon: "M4 7h4l2-2h4l2 2h4v12H4zM12 10a3.5 3.5 0 1 0 0 7a3.5 3.5 0 0 0 0-7z" },
  { href: "/console/keys", label: "API keys", icon: "M15 7a4 4 0 1 0-3.9 5H12l2 2h2v2h2v2h3v-3l-6.1-6.1A4 4 0 0 0 15 7z" },
];
const ADMIN_NAV = [{ href: "/console/hosts", label: "Hosts", icon: "M4 4h16v6H4zM4 14h16v6H4zM8 7h.01M8 17h.01" }];

function Icon({ d }: { d: string }) {
  return (
    <svg class="nav-icon" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.7" stroke-linecap="round" stroke-linejoin="round">
      <path d={d} />
    </svg>
  );
}

function Shell({ path }: { path: string }) {
  const s = session()!;
  const admin = useIsAdmin(s.token);
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => setMenuOpen(false), [path]);

  let page;
  let m: Record<string, string> | null;
  if (match("/console/sandboxes", path)) page = <SandboxesPage />;
  else if ((m = match("/console/sandboxes/:id/:tab?", path))) page = <SandboxPage id={m.id} tab={m.tab ?? "overview"} />;
  else if (match("/console/keys", path)) page = <KeysPage />;
  else if (match("/console/snapshots", path)) page = <SnapshotsPage />;
  else if (match("/console/hosts", path)) page = <HostsPage />;
  else
    page = (
      <div class="card pad">
        <h1>Page not found</h1>
        <p class="muted">
          There is no console page at <code>{path}</code>. <Link href="/console/sandboxes">Go to sandboxes</Link>.
        </p>
      </div>
    );

  const nav = [...NAV, ...(admin ? ADMIN_NAV : [])];
  return (
    <div class={`shell ${menuOpen ? "menu-open" : ""}`}>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <aside class="sidebar">
        <div class="brand">
          <Logo />
          <span>Warren</span>
          <button
            type="button"
            class="menu-toggle"
            aria-expanded={menuOpen}
            aria-controls="primary-nav"
            onClick={() => setMenuOpen(!menuOpen)}
          >
            Menu
          </button>
        </div>
        <nav id="primary-nav" aria-label="Main">
          <ul>
            {nav.map((n) => {
              const active = path === n.href || path.startsWith(`${n.href}/`);
              return (
                <li key={n.href}>
                  <Link href={n.href} class={active ? "active" : ""} aria-current={active ? "page" : undefined}>
                    <Icon d={n.icon} />
                    {n.label}
                  </Link>
                </li>
              );
            })}
          </ul>
          <div class="nav-foot">
            <a href="/docs" target="_blank" rel="noopener">
              API reference ↗
            </a>
          </div>
        </nav>
        <div class="account">
          <div class="account-who">
            <span class="avatar" aria-hidden="true">
              {(s.user.name || s.user.email).slice(0, 1).toUpperCase()}
            </span>
            <div>
              <div class="account-email" title={s.user.email}>
                {s.user.email}
              </div>
              <div class="account-team">
                Team {s.team.name}
                {admin ? " · admin" : ""}
              </div>
            </div>
          </div>
          <button type="button" class="btn btn-ghost btn-sm signout" onClick={() => setSession(null, "You signed out.")}>
            Sign out
          </button>
        </div>
      </aside>
      <main id="main" class="content">
        {page}
      </main>
    </div>
  );
}

function App() {
  const s = useSession();
  const path = usePath();

  useEffect(() => {
    if (!s && !path.startsWith("/console/login") && !path.startsWith("/console/signup")) {
      const next = path.startsWith("/console/") ? path : "";
      navigate(`/console/login${next ? `?next=${encodeURIComponent(next)}` : ""}`, true);
    } else if (s && (path === "/" || path === "/console" || path === "/console/" || path.startsWith("/console/login") || path.startsWith("/console/signup"))) {
      const next = new URLSearchParams(window.location.search).get("next");
      navigate(next && next.startsWith("/console/") ? next : "/console/sandboxes", true);
    }
  }, [s, path]);

  if (!s) {
    return (
      <>
        <AuthPage mode={path.startsWith("/console/signup") ? "signup" : "login"} />
        <Toasts />
      </>
    );
  }
  return (
    <>
      <Shell path={path} />
      <Toasts />
    </>
  );
}

render(<App />, document.getElementById("app")!);
