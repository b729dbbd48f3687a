// Hookdeck's official TypeScript SDK against a live outpost: tenant, destination
// (aws_kinesis) and publish flows, as the admin and with a tenant token. The SDK validates
// every response with its zod schemas; any mismatch throws and the process exits 1.
import { Outpost } from "@hookdeck/outpost-sdk";

const base = process.env.OUTPOST_URL;
const admin = new Outpost({ apiKey: process.env.OUTPOST_KEY, serverURL: base });
const assert = (ok, what) => { if (!ok) { throw new Error(`failed: ${what}`); } };

const tenant = await admin.tenants.upsert("ts-acme", { metadata: { plan: "pro" } });
assert(tenant.id === "ts-acme" && tenant.metadata.plan === "pro", "upsert tenant");
assert((await admin.tenants.get("ts-acme")).destinationsCount === 0, "get tenant");
const page = await admin.tenants.list({ limit: 100 });
assert(page.models.some((t) => t.id === "ts-acme"), "list tenants");

const dest = await admin.destinations.create("ts-acme", {
  type: "aws_kinesis", topics: ["orders"],
  config: { streamName: process.env.STREAM, region: "us-east-1",
            endpoint: process.env.KINESIS_URL, partitionKeyTemplate: "data.customer_id" },
  credentials: { key: "AKIATS", secret: "ts-secret-value-12" },
});
assert(dest.type === "aws_kinesis" && dest.credentials.secret !== "ts-secret-value-12",
       "create destination, secret masked");
assert((await admin.destinations.list("ts-acme")).length === 1, "list destinations");
assert((await admin.destinations.get("ts-acme", dest.id)).id === dest.id, "get destination");
const updated = await admin.destinations.update("ts-acme", dest.id,
  { type: "aws_kinesis", topics: "*" });
assert(updated.topics === "*", "update destination");
await admin.destinations.disable("ts-acme", dest.id);
await admin.destinations.enable("ts-acme", dest.id);

const pub = await admin.publish({ tenantId: "ts-acme", topic: "orders", id: "ts-evt-1",
                                  data: { customer_id: "c-1" } });
assert(pub.id === "ts-evt-1" && pub.destinationIds[0] === dest.id && !pub.duplicate,
       "publish");
const again = await admin.publish({ tenantId: "ts-acme", topic: "orders", id: "ts-evt-1",
                                    data: { customer_id: "c-1" } });
assert(again.duplicate === true, "duplicate publish");

const { token } = await admin.tenants.getToken("ts-acme");
const me = new Outpost({ apiKey: token, serverURL: base });
assert((await me.tenants.get("ts-acme")).id === "ts-acme", "tenant token: get tenant");
assert((await me.destinations.list("ts-acme"))[0].id === dest.id, "tenant token: list");
const events = await me.events.list({});
assert(events.models.map((e) => e.id).join() === "ts-evt-1", "tenant token: events");

await admin.destinations.delete("ts-acme", dest.id);
await admin.tenants.delete("ts-acme");
console.log("TS SDK OK");
