// Hookdeck's official TypeScript SDK against a live outpost: create, read, update
// (rotate the signing secret; replace the token) and delete webhook and hookdeck
// destinations, as the admin and as the tenant. The SDK validates every response with
// its zod schemas; any mismatch throws and the process exits 1.
import { Outpost } from "@hookdeck/outpost-sdk";

const base = process.env.OUTPOST_URL;
const admin = new Outpost({ apiKey: process.env.OUTPOST_KEY, serverURL: base });
const assert = (ok, what) => { if (!ok) { throw new Error(`failed: ${what}`); } };

await admin.tenants.upsert("ts-http", {});
const hook = await admin.destinations.create("ts-http", {
  type: "webhook", topics: ["orders"],
  config: { url: process.env.WEBHOOK_URL, customHeaders: '{"x-team":"ts"}' },
});
const secret = hook.credentials.secret;
assert(hook.type === "webhook" && secret.startsWith("whsec_"), "create webhook, secret shown");
assert((await admin.destinations.get("ts-http", hook.id)).credentials.secret === secret,
       "get webhook");

const { token } = await admin.tenants.getToken("ts-http");
const me = new Outpost({ apiKey: token, serverURL: base });
const rotated = await me.destinations.update("ts-http", hook.id,
  { type: "webhook", credentials: { rotateSecret: true } });
assert(rotated.credentials.previousSecret === secret && rotated.credentials.secret !== secret,
       "tenant rotates the secret");

const hd = await admin.destinations.create("ts-http", {
  type: "hookdeck", topics: "*", credentials: { token: process.env.HOOKDECK_TOKEN },
});
assert(hd.type === "hookdeck" && hd.credentials.token !== process.env.HOOKDECK_TOKEN,
       "create hookdeck, token masked");
const other = Buffer.from("src_ts01:key-2").toString("base64");
const hd2 = await admin.destinations.update("ts-http", hd.id,
  { type: "hookdeck", credentials: { token: other } });
assert(hd2.id === hd.id, "update hookdeck token");
assert((await admin.destinations.list("ts-http")).length === 2, "list both");
const types = (await admin.schemas.listDestinationTypes()).map((t) => t.type);
assert(types.includes("webhook") && types.includes("hookdeck"), "destination types");

await admin.destinations.delete("ts-http", hook.id);
await admin.destinations.delete("ts-http", hd.id);
assert((await admin.destinations.list("ts-http")).length === 0, "deleted");
await admin.tenants.delete("ts-http");
console.log("TS SDK HTTP OK");
