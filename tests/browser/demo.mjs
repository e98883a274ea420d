// Drives the demo page like a person: register, like the first video, comment on it, screenshot.
// Usage: node demo.mjs <base-url> <screenshot.png>   (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 860 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${base}/`);
  const name = `browser${Date.now() % 100000}`;
  await page.fill("#username", name);
  await page.fill("#password", "pw12345");
  await page.click("#register");
  await page.waitForSelector("#logout:not([hidden])", { timeout: 15000 });

  const card = page.locator("article.video").first();
  await card.waitFor({ timeout: 15000 });
  await card.locator(".like").click();
  await card.locator(".like-count", { hasText: /^1$/ }).waitFor({ timeout: 15000 });

  await card.locator(".show-comments").click();
  await card.locator(".comment-input").fill("hello from chromium");
  await card.locator(".comment-send").click();
  await card.locator(".comment-list li", { hasText: "hello from chromium" }).waitFor({ timeout: 15000 });
  await card.locator(".comment-count", { hasText: /^1$/ }).waitFor({ timeout: 15000 });

  await page.screenshot({ path: screenshot });
  if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  console.log(JSON.stringify({ user: name, video: await card.getAttribute("data-video-id") }));
} finally {
  await browser.close();
}
