// A person in a real browser (headless Chromium): opens <start URL> and does what a person
// would on every page (sign in with the fields given, approve, continue) until a page under
// <stop at> has loaded. Prints one JSON object: the final URL (with its query), the trail of
// pages on the way, and every top-level request the browser made (redirects included).
// Usage: node browse.mjs <start URL> <stop at> '<fill JSON>' (see chromium.mjs)
import { signIn } from "./chromium.mjs";

const [start, stopAt, fill] = process.argv.slice(2);
try {
  const { url, trail, requests } = await signIn(start, { stopAt, fill: JSON.parse(fill ?? "{}") });
  console.log(JSON.stringify({ url, trail, requests }));
} catch (e) {
  console.log(JSON.stringify({ error: String(e.message ?? e), trail: e.trail ?? [] }));
  process.exit(1);
}
