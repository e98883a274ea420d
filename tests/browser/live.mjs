// Two people in two browser contexts, each logged in on the demo page: a message A sends appears in
// B's open chat within a second of its acknowledgement, with no chat poll from B's page (the live
// stream brought it); A's like of B's video updates the count on B's page.
// Usage: node live.mjs <base-url> <name-a> <name-b> <password> <screenshot.png>
import { chromium } from "playwright-core";

const [base, nameA, nameB, password, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const errors = [];
async function logIn(name) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(`${name}: ${e}`));
  await page.goto(`${base}/`);
  await page.fill("#username", name);
  await page.fill("#password", password);
  await page.click("#login");
  await page.waitForSelector("#logout:not([hidden])", { timeout: 15000 });
  await page.waitForFunction(() => window.titokLive && window.titokLive.open, null, { timeout: 15000 });
  return page;
}
const cardOf = (page, author) =>
  page.locator("article.video", { has: page.locator(".author", { hasText: `@${author}` }) }).first();

try {
  const a = await logIn(nameA);
  const b = await logIn(nameB);
  await cardOf(a, nameB).locator(".message").click();
  await cardOf(b, nameA).locator(".message").click();
  const pollsBefore = await b.evaluate(() => window.titokLive.polls);

  await a.fill("#chat-text", "hello, live");
  await a.click("#chat-form button[type=submit]");
  // The send is acknowledged once the page clears the input.
  await a.waitForFunction(() => document.querySelector("#chat-text").value === "", null, { timeout: 10000 });
  const sent = Date.now();
  await b.locator("#chat-log p", { hasText: "hello, live" }).waitFor({ timeout: 1000 });
  const delayMs = Date.now() - sent;
  const polls = (await b.evaluate(() => window.titokLive.polls)) - pollsBefore;
  if (polls !== 0) throw new Error(`B's page polled the chat ${polls} times: the message did not come by push`);

  await cardOf(a, nameB).locator(".like").click();
  await cardOf(b, nameB).locator(".like-count", { hasText: /^1$/ }).waitFor({ timeout: 2000 });

  await b.screenshot({ path: screenshot });
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ message_delay_ms: delayMs }));
} finally {
  await browser.close();
}
