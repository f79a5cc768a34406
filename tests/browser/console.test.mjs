// The web console in a real browser (Debian's chromium, headless, via playwright-core) against a
// real control plane and agent (fleet.mjs): a new user signs up, makes an API key, creates a
// sandbox, runs `echo` and sees the output, uploads and downloads a file, types in the terminal,
// pauses and resumes, destroys; an admin sees the host and the 409 preview of deleting it.
// Screenshots of the main pages go to tests/browser/screenshots/ (gitignored).
//
// Run: `npm --prefix tests/browser ci && npm --prefix tests/browser test` (root, runsc, chromium,
// target/debug/warren and the static envd built; otherwise it skips and says why).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Fleet, chromiumPath, skipReason } from "./fleet.mjs";

const SHOTS = join(new URL(".", import.meta.url).pathname, "screenshots");
const reason = skipReason();
if (reason) console.error(`SKIP: browser tests: ${reason}`);

const SANDBOX_URL = /\/console\/sandboxes\/([0-9a-f-]{36})/;

test("the console drives a sandbox end to end", { skip: reason ?? false, timeout: 600_000 }, async (t) => {
  mkdirSync(SHOTS, { recursive: true });
  const fleet = await Fleet.start();
  console.error(`fleet up in ${fleet.startedInMs} ms at ${fleet.base}`);
  let browser;
  const pageErrors = [];
  try {
    browser = await chromium.launch({
      executablePath: chromiumPath(),
      headless: true,
      // playwright gives every launch a fresh, empty profile (--user-data-dir) of its own.
      args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"],
    });
    const context = await browser.newContext({ viewport: { width: 1360, height: 860 }, acceptDownloads: true });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    page.on("pageerror", (e) => pageErrors.push(e.message));
    const shot = async (name) => {
      // Old notifications (dismissed the way a user would) would hide the page behind them.
      await page.evaluate(() => document.querySelectorAll(".toast .alert-close").forEach((b) => b.click()));
      await page.evaluate(() => document.activeElement instanceof HTMLElement && document.activeElement.blur());
      await page.screenshot({ path: join(SHOTS, `${name}.png`) });
    };
    const timed = async (what, fn) => {
      const t0 = Date.now();
      const r = await fn();
      console.error(`  ${what}: ${Date.now() - t0} ms`);
      return r;
    };
    const nav = (name) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name });
    const command = () => page.getByRole("textbox", { name: "Command" });
    // Basic accessibility of what is on screen: every control has a name, one h1, lang set.
    const checkA11y = async (where) => {
      const problems = await page.evaluate(() => {
        const out = [];
        const named = (el) =>
          (el.getAttribute("aria-label") ?? "").trim() ||
          (el.getAttribute("aria-labelledby") ?? "").trim() ||
          (el.labels && el.labels.length > 0) ||
          (el.textContent ?? "").trim() ||
          el.getAttribute("title");
        for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea, button, a[href]")) {
          if (el.closest(".xterm")) continue;
          if (!named(el)) out.push(`unnamed ${el.outerHTML.slice(0, 80)}`);
        }
        const h1 = document.querySelectorAll("h1").length;
        if (h1 !== 1) out.push(`${h1} h1 elements`);
        if (!document.documentElement.lang) out.push("no lang on <html>");
        for (const svg of document.querySelectorAll("svg")) {
          if (svg.closest(".xterm")) continue;
          if (svg.getAttribute("aria-hidden") !== "true" && !svg.getAttribute("aria-label")) out.push("svg without aria-hidden or label");
        }
        return out;
      });
      assert.deepEqual(problems, [], `accessibility problems on ${where}`);
    };
    const step = (name, fn) =>
      t.test(name, async () => {
        try {
          await fn();
        } catch (e) {
          const file = `failed-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60)}.png`;
          await page.screenshot({ path: join(SHOTS, file) }).catch(() => {});
          console.error(`  (screenshot of the failure: tests/browser/screenshots/${file})`);
          throw e;
        }
      });
    const email = `ada-${process.pid}-${Date.now()}@example.com`;
    const password = "correct horse battery";
    let sandboxId;

    await step("the seed's /test page and a stale session both lead to the login page", async () => {
      await page.goto(`${fleet.base}/test`);
      await page.waitForURL(/\/console\/login\?next=%2Fconsole%2Fsandboxes/);
      // A token the server no longer accepts: the first call signs the user out, and says so.
      await page.evaluate(() =>
        localStorage.setItem(
          "warren.session",
          JSON.stringify({
            token: "not-a-jwt",
            expires_at: new Date(Date.now() + 3600_000).toISOString(),
            user: { id: "x", email: "ghost@example.com", name: null, created_at: new Date().toISOString() },
            team: { id: "y", name: "Ghosts", role: "owner", created_at: new Date().toISOString() },
          }),
        ),
      );
      await page.goto(`${fleet.base}/console/keys`);
      await page.getByText(/You were signed out: .*\./).waitFor();
      await page.waitForURL(/\/console\/login/);
      assert.equal(await page.evaluate(() => localStorage.getItem("warren.session")), null);
    });

    await step("a new user lands on the login page and signs up", async () => {
      await page.goto(`${fleet.base}/`);
      await page.waitForURL(/\/console\/login/);
      await page.getByRole("heading", { name: "Log in" }).waitFor();
      await shot("01-login");
      await checkA11y("01-login");
      await page.getByRole("link", { name: "Create an account" }).click();
      await page.getByLabel("Name").fill("Ada Lovelace");
      await page.getByLabel("Email").fill(email);
      await page.getByLabel("Password").fill("short");
      await page.getByRole("button", { name: "Create account" }).click();
      // The browser's own check (minlength) or the server's words: either way, no account yet.
      assert.match(page.url(), /\/console\/signup/);
      await page.getByLabel("Password").fill(password);
      await shot("02-signup");
      await page.getByRole("button", { name: "Create account" }).click();
      await page.waitForURL(/\/console\/sandboxes$/);
      await page.getByRole("heading", { name: "Sandboxes", exact: true }).waitFor();
      await page.getByText("No active sandboxes").waitFor();
      const token = await page.evaluate(() => JSON.parse(localStorage.getItem("warren.session")).token);
      fleet.tokens.push(token);
      await shot("03-sandboxes-empty");
      await checkA11y("03-sandboxes-empty");
    });

    await step("an API key is shown once and works", async () => {
      await nav("API keys").click();
      await page.getByRole("heading", { name: "API keys", exact: true }).waitFor();
      await page.getByRole("button", { name: "Create key" }).first().click();
      const dialog = page.getByRole("dialog");
      // Keyboard: the dialog takes focus and Escape closes it.
      await dialog.getByLabel("Name").waitFor();
      assert.equal(await page.evaluate(() => document.activeElement?.closest("dialog") !== null), true);
      await page.keyboard.press("Escape");
      await dialog.waitFor({ state: "detached" }).catch(() => dialog.waitFor({ state: "hidden" }));
      await page.getByRole("button", { name: "Create key" }).first().click();
      await dialog.getByLabel("Name").fill("laptop");
      await dialog.getByRole("button", { name: "Create key" }).click();
      const key = (await page.getByTestId("new-api-key").textContent()).trim();
      assert.match(key, /^wr_/);
      const me = await fetch(`${fleet.base}/v1/me`, { headers: { "X-API-Key": key } });
      assert.equal(me.status, 200);
      assert.equal((await me.json()).auth, "api_key");
      await page.getByRole("cell", { name: "laptop", exact: true }).waitFor();
      await shot("04-api-key-created");
      await checkA11y("04-api-key-created");
      await page.getByRole("button", { name: "I have saved it" }).click();
      assert.equal(await page.getByTestId("new-api-key").count(), 0);
      // Deleting asks first; then the key stops working at once.
      await page.getByRole("button", { name: "Delete key laptop" }).click();
      await page.getByRole("dialog").getByRole("button", { name: "Delete key" }).click();
      await page.getByText("No API keys yet").waitFor();
      const gone = await fetch(`${fleet.base}/v1/me`, { headers: { "X-API-Key": key } });
      assert.equal(gone.status, 401);
    });

    await step("creating from an unknown template shows the server's words", async () => {
      await nav("Sandboxes").click();
      await page.getByRole("button", { name: "New sandbox" }).first().click();
      const dialog = page.getByRole("dialog");
      await dialog.getByLabel("Template").fill("no-such-template");
      await dialog.getByRole("button", { name: "Create sandbox" }).click();
      const alert = dialog.getByRole("alert");
      await alert.waitFor();
      const text = await alert.textContent();
      assert.match(text, /no-such-template/);
      assert.match(text, /not found/);
      assert.match(text, /HTTP 404/);
    });

    await step("a sandbox is created from the minimal template and runs", async () => {
      const dialog = page.getByRole("dialog");
      await dialog.getByLabel("Template").fill("minimal");
      await shot("05-new-sandbox");
      await timed("create sandbox (click to page)", async () => {
        await dialog.getByRole("button", { name: "Create sandbox" }).click();
        await page.waitForURL(SANDBOX_URL, { timeout: 90_000 });
      });
      sandboxId = SANDBOX_URL.exec(page.url())[1];
      await page.locator("h1 .badge", { hasText: "running" }).waitFor({ timeout: 60_000 });
      await page.getByText(sandboxId).first().waitFor();
      // Usage from GET /metrics: memory in use is a real number of bytes.
      await page.locator('dl[aria-label="Usage"] dd', { hasText: /\d+(\.\d)? (B|KiB|MiB|GiB)/ }).first().waitFor();
      await shot("06-sandbox-overview");
      await checkA11y("06-sandbox-overview");
    });

    await step("exec streams the output of echo", async () => {
      await page.getByRole("link", { name: "Exec" }).click();
      await command().fill("echo hello-from-the-browser; echo to-stderr >&2");
      await timed("exec echo", async () => {
        await command().press("Enter");
        await page.locator("[data-exit-code]").first().waitFor();
      });
      const out = page.getByTestId("exec-output");
      assert.match(await out.textContent(), /hello-from-the-browser/);
      assert.match(await out.locator(".out-stderr").first().textContent(), /to-stderr/);
      assert.equal(await page.locator("[data-exit-code]").first().getAttribute("data-exit-code"), "0");
      await command().fill("ls /nope");
      await command().press("Enter");
      await page.locator("[data-exit-code]").nth(1).waitFor();
      assert.notEqual(await page.locator("[data-exit-code]").nth(1).getAttribute("data-exit-code"), "0");
      await shot("07-exec");
      await checkA11y("07-exec");
    });

    await step("a file is uploaded, listed and downloaded", async () => {
      await page.getByRole("link", { name: "Files" }).click();
      await page.getByRole("table").waitFor();
      const content = `uploaded from chromium at ${new Date().toISOString()}\n`;
      await timed("upload", async () => {
        await page.setInputFiles("#files-upload", { name: "greeting.txt", mimeType: "text/plain", buffer: Buffer.from(content) });
        await page.locator('tr[data-file="greeting.txt"]').waitFor();
      });
      const row = page.locator('tr[data-file="greeting.txt"]');
      assert.match(await row.textContent(), new RegExp(`${content.length} B`));
      const [download] = await Promise.all([page.waitForEvent("download"), row.getByRole("button", { name: "Download greeting.txt" }).click()]);
      assert.equal(download.suggestedFilename(), "greeting.txt");
      assert.equal(readFileSync(await download.path(), "utf8"), content);
      // The upload is really in the sandbox: read it back with exec.
      await page.getByRole("link", { name: "Exec" }).click();
      await command().fill("cat /tmp/greeting.txt");
      await command().press("Enter");
      await page.locator("[data-exit-code]").first().waitFor();
      assert.match(await page.getByTestId("exec-output").textContent(), /uploaded from chromium/);
      await page.getByRole("link", { name: "Files" }).click();
      await page.locator('tr[data-file="greeting.txt"]').waitFor();
      await shot("08-files");
      await checkA11y("08-files");
    });

    await step("the terminal echoes what is typed", async () => {
      await page.getByRole("link", { name: "Terminal" }).click();
      await timed("terminal connect", () => page.getByText("Connected").waitFor());
      await page.locator(".xterm").click();
      await page.keyboard.type("echo term-$((6*7))\n", { delay: 10 });
      await page.locator(".xterm-rows", { hasText: "term-42" }).waitFor();
      // The typed line and its output both show: the prompt echoed the keys, the shell ran them.
      const rows = await page.locator(".xterm-rows").textContent();
      assert.match(rows, /echo term-\$\(\(6\*7\)\)/);
      await page.keyboard.type("printf 'cols=%s\\n' \"$(stty size)\"\n", { delay: 5 });
      await page.locator(".xterm-rows", { hasText: /cols=\d+ \d+/ }).waitFor();
      await shot("09-terminal");
      await checkA11y("09-terminal");
    });

    await step("pause and resume, and the sandbox still works", async () => {
      await page.getByRole("link", { name: "Overview" }).click();
      await page.getByRole("button", { name: "Set timeout" }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByRole("button", { name: "15 min" }).click();
      await dialog.getByRole("button", { name: "Set timeout" }).click();
      await page.locator("dd", { hasText: /^15 min$/ }).waitFor();
      await page.locator("dd", { hasText: "in 15 minutes" }).waitFor();
      const sb = await (await fetch(`${fleet.base}/v1/sandboxes/${sandboxId}`, { headers: { Authorization: `Bearer ${fleet.tokens[0]}` } })).json();
      assert.equal(sb.timeout_s, 900);
      assert.ok(Math.abs(Date.parse(sb.expires_at) - Date.now() - 900_000) < 60_000, sb.expires_at);
      await timed("pause", async () => {
        await page.getByRole("button", { name: "Pause", exact: true }).click();
        await page.locator("h1 .badge", { hasText: "paused" }).waitFor({ timeout: 90_000 });
      });
      await page.getByRole("link", { name: "Exec" }).click();
      await page.getByText("Resume it to run commands").waitFor();
      await shot("10-paused");
      await timed("resume", async () => {
        await page.getByRole("button", { name: "Resume", exact: true }).click();
        await page.locator("h1 .badge", { hasText: "running" }).waitFor({ timeout: 90_000 });
      });
      await command().fill("cat /tmp/greeting.txt && echo after-resume");
      await command().press("Enter");
      await page.locator("[data-exit-code]").first().waitFor();
      assert.match(await page.getByTestId("exec-output").textContent(), /after-resume/);
    });

    await step("the list shows the sandbox with its live status", async () => {
      await nav("Sandboxes").click();
      const row = page.locator(`tr[data-sandbox-id="${sandboxId}"]`);
      await row.locator(".badge", { hasText: "running" }).waitFor();
      await nav("Snapshots").click();
      await page.getByRole("heading", { name: "Snapshots", exact: true }).waitFor();
      await nav("Sandboxes").click();
      await row.waitFor();
      await shot("11-sandboxes");
    });

    await step("a snapshot starts a new sandbox where the old one was, then is deleted", async () => {
      const snap = `snap-${process.pid}`;
      await page.locator(`tr[data-sandbox-id="${sandboxId}"] a`).first().click();
      await page.waitForURL(SANDBOX_URL);
      await page.getByRole("button", { name: "Snapshot", exact: true }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByLabel("Snapshot name").fill(snap);
      await timed("snapshot", async () => {
        await dialog.getByRole("button", { name: "Create snapshot" }).click();
        await page.waitForURL(/\/console\/snapshots$/, { timeout: 120_000 });
      });
      const row = page.locator("tr", { has: page.getByRole("cell", { name: snap, exact: true }) });
      await row.waitFor();
      await row.locator(".badge", { hasText: "ready" }).waitFor({ timeout: 60_000 });
      await shot("12-snapshots");
      await checkA11y("12-snapshots");
      await row.getByRole("button", { name: "Start sandbox" }).click();
      assert.equal(await dialog.getByLabel("Template").inputValue(), snap);
      await timed("create from snapshot", async () => {
        await dialog.getByRole("button", { name: "Create sandbox" }).click();
        await page.waitForURL(SANDBOX_URL, { timeout: 120_000 });
      });
      const forkId = SANDBOX_URL.exec(page.url())[1];
      assert.notEqual(forkId, sandboxId);
      await page.locator("h1 .badge", { hasText: "running" }).waitFor({ timeout: 60_000 });
      await page.getByRole("link", { name: "Exec" }).click();
      await command().fill("cat /tmp/greeting.txt");
      await command().press("Enter");
      await page.locator("[data-exit-code]").first().waitFor();
      assert.match(await page.getByTestId("exec-output").textContent(), /uploaded from chromium/);
      await page.getByRole("button", { name: `Destroy sandbox ${forkId}` }).click();
      await dialog.getByRole("button", { name: "Destroy sandbox" }).click();
      await page.locator("h1 .badge", { hasText: "stopped" }).waitFor({ timeout: 60_000 });
      await nav("Snapshots").click();
      await row.getByRole("button", { name: `Delete snapshot ${snap}` }).click();
      await dialog.getByRole("button", { name: "Delete snapshot" }).click();
      await row.waitFor({ state: "detached" });
      await nav("Sandboxes").click();
    });

    await step("destroy asks first, then the sandbox is stopped", async () => {
      const row = page.locator(`tr[data-sandbox-id="${sandboxId}"]`);
      await row.getByRole("button", { name: `Destroy sandbox ${sandboxId}` }).click();
      const dialog = page.getByRole("dialog");
      await dialog.getByText("cannot be undone").waitFor();
      await shot("13-destroy-confirm");
      await timed("destroy", async () => {
        await dialog.getByRole("button", { name: "Destroy sandbox" }).click();
        await row.waitFor({ state: "detached", timeout: 60_000 });
      });
      const r = await fetch(`${fleet.base}/v1/sandboxes/${sandboxId}`, { headers: { Authorization: `Bearer ${fleet.tokens[0]}` } });
      assert.equal((await r.json()).status, "stopped");
    });

    await step("an admin sees the host and the 409 preview of deleting it", async () => {
      // A sandbox of the admin's keeps the host busy.
      const r = await fetch(`${fleet.base}/v1/sandboxes`, {
        method: "POST",
        headers: { Authorization: `Bearer ${fleet.adminToken}`, "Content-Type": "application/json" },
        body: JSON.stringify({ template: "minimal", timeout_s: 600 }),
      });
      fleet.tokens.push(fleet.adminToken);
      const body = await r.text();
      assert.equal(r.status, 201, body);
      const busy = JSON.parse(body).id;

      await page.getByRole("button", { name: "Sign out" }).click();
      await page.waitForURL(/\/console\/login/);
      await page.getByText("You signed out.").waitFor();
      await page.getByLabel("Email").fill(fleet.adminEmail);
      await page.getByLabel("Password").fill("wrong password");
      await page.getByRole("button", { name: "Log in" }).click();
      await page.getByRole("alert").filter({ hasText: "HTTP 401" }).waitFor();
      await page.getByLabel("Password").fill(fleet.adminPassword);
      await page.getByRole("button", { name: "Log in" }).click();
      await page.waitForURL(/\/console\/sandboxes$/);
      await nav("Hosts").click();
      await page.getByRole("heading", { name: "Hosts", exact: true }).waitFor();
      await page.locator("td .badge", { hasText: "online" }).first().waitFor();
      await shot("14-hosts");
      await checkA11y("14-hosts");
      await page.getByRole("button", { name: "New token" }).first().click();
      await page.getByText(/warren agent --register wrh_/).waitFor();
      await page.getByRole("button", { name: /^Delete host/ }).first().click();
      const dialog = page.getByRole("dialog");
      await dialog.getByRole("button", { name: "Delete host" }).click();
      await dialog.getByText(busy).waitFor();
      await dialog.getByRole("button", { name: /Destroy 1 sandbox and delete/ }).waitFor();
      await shot("15-host-delete-preview");
      await dialog.getByRole("button", { name: "Cancel" }).click();
      const hosts = await fetch(`${fleet.base}/v1/hosts/${fleet.hostId}`, { headers: { Authorization: `Bearer ${fleet.adminToken}` } });
      assert.equal((await hosts.json()).status, "online");
    });

    await step("the layout holds on a phone", async () => {
      await page.setViewportSize({ width: 390, height: 844 });
      await page.getByRole("button", { name: "Menu" }).click();
      await nav("Sandboxes").click();
      await page.getByRole("heading", { name: "Sandboxes", exact: true }).waitFor();
      await page.locator("tr[data-sandbox-id]").first().waitFor();
      await shot("16-phone");
      const { overflow, culprits } = await page.evaluate(() => {
        const w = window.innerWidth;
        const culprits = [...document.querySelectorAll("body *")]
          .filter((el) => el.getBoundingClientRect().right > w + 1 && !el.parentElement?.closest(".table-wrap, .xterm"))
          .slice(0, 5)
          .map((el) => `${el.tagName.toLowerCase()}.${el.className}`);
        return { overflow: document.documentElement.scrollWidth - w, culprits };
      });
      assert.ok(overflow <= 0, `page scrolls sideways by ${overflow}px: ${culprits.join(", ")}`);
      await page.locator("tr[data-sandbox-id] a").first().click();
      await page.waitForURL(SANDBOX_URL);
      await page.getByRole("link", { name: "Exec" }).click();
      await command().fill("uname -a");
      await command().press("Enter");
      await page.locator("[data-exit-code]").first().waitFor();
      await shot("17-phone-sandbox");
      const sideways = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(sideways <= 0, `sandbox page scrolls sideways by ${sideways}px`);
    });

    await step("force-deleting the host destroys its sandbox", async () => {
      await page.setViewportSize({ width: 1360, height: 860 });
      const busy = (await (await fetch(`${fleet.base}/v1/sandboxes`, { headers: { Authorization: `Bearer ${fleet.adminToken}` } })).json()).items[0].id;
      await page.getByRole("link", { name: "Hosts" }).click();
      await page.getByRole("button", { name: /^Delete host/ }).first().click();
      const dialog = page.getByRole("dialog");
      await dialog.getByRole("button", { name: "Delete host" }).click();
      await timed("force delete", async () => {
        await dialog.getByRole("button", { name: /Destroy 1 sandbox and delete/ }).click();
        await page.getByText("No hosts").waitFor({ timeout: 60_000 });
      });
      const sb = await (await fetch(`${fleet.base}/v1/sandboxes/${busy}`, { headers: { Authorization: `Bearer ${fleet.adminToken}` } })).json();
      assert.equal(sb.status, "stopped");
    });

    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  } catch (e) {
    console.error(fleet.logs());
    throw e;
  } finally {
    await browser?.close();
    await fleet.stop();
  }
});
