// An administrator connecting an upstream's service account: headless Chromium opens the
// URL `authgate admin connect` printed, signs in at the service (oidc-provider's login and
// consent pages), and lands on authgate's /connect/callback page. Prints one JSON object
// with the pages it went through (the last one is authgate's answer).
// Usage: node connect-flow.mjs <authorize URL> <callback URL> <login>
import { signIn } from "./chromium.mjs";

const [url, stopAt, login] = process.argv.slice(2);
const { trail } = await signIn(url, { stopAt, fill: { login, password: "anything" } });
console.log(JSON.stringify({ trail }));
