// Drives the operator console in headless Chromium the way a person would: sign in with a
// token, find the pending decision, write a reason, press Approve, and wait until the live
// stream shows the decision enacted. Saves a screenshot. Run by tests/api/browser.rs.
//
// Environment: CONCLAVE_CONSOLE_URL, CONCLAVE_API_TOKEN, CONCLAVE_DECISION_ID,
// CONCLAVE_SCREENSHOT (PNG path), CONCLAVE_CHROMIUM (default /usr/bin/chromium).
import { chromium } from "playwright-core";

const need = (name) => {
  const v = process.env[name];
  if (!v) { console.error(`console.mjs: ${name} is not set`); process.exit(2); }
  return v;
};
const url = need("CONCLAVE_CONSOLE_URL");
const token = need("CONCLAVE_API_TOKEN");
const id = need("CONCLAVE_DECISION_ID");
const screenshot = need("CONCLAVE_SCREENSHOT");
const executablePath = process.env.CONCLAVE_CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const consoleErrors = [];
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(url);
  await page.fill("#token", token);
  await page.click("#login-form button");
  const row = page.locator(`#approvals tr[data-decision="${id}"]`);
  await row.waitFor({ timeout: 30000 });
  const rowText = await row.innerText();
  await page.fill("#reason", "approved in the browser test");
  await row.locator("button.approve").click();
  // Enacted: the live stream brings the settled decision, and the approval row is gone.
  await page.locator(`#decisions li[data-decision="${id}"][data-outcome="enacted"]`).waitFor({ timeout: 30000 });
  await row.waitFor({ state: "detached", timeout: 30000 });
  const error = await page.locator("#error").innerText();
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(JSON.stringify({ approved: id, row: rowText, error, pageErrors: consoleErrors }));
} finally {
  await browser.close();
}
