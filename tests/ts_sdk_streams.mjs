// Hookdeck's official TypeScript SDK against a live outpost: create, read, update and
// delete a kafka and a gcp_pubsub destination, and publish an event that each delivers.
// The SDK validates every response with its zod schemas; any mismatch throws (exit 1).
import { Outpost } from "@hookdeck/outpost-sdk";

const admin = new Outpost({ apiKey: process.env.OUTPOST_KEY, serverURL: process.env.OUTPOST_URL });
const assert = (ok, what) => { if (!ok) { throw new Error(`failed: ${what}`); } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const users = JSON.parse(process.env.KAFKA_USERS);

async function crud(tenant, create, rotate, secretOf) {
  await admin.tenants.upsert(tenant, {});
  const dest = await admin.destinations.create(tenant, create);
  assert(dest.type === create.type && secretOf(dest).endsWith("******"), `${tenant}: create, masked`);
  assert((await admin.destinations.get(tenant, dest.id)).id === dest.id, `${tenant}: get`);
  assert((await admin.destinations.list(tenant)).length === 1, `${tenant}: list`);
  const updated = await admin.destinations.update(tenant, dest.id, { type: create.type, ...rotate });
  assert(secretOf(updated).endsWith("******"), `${tenant}: update, masked`);
  const pub = await admin.publish({ tenantId: tenant, topic: "orders", id: `${tenant}-1`, data: { n: 1 } });
  assert(pub.destinationIds[0] === dest.id, `${tenant}: publish`);
  let ok = false;
  for (let i = 0; i < 100 && !ok; i++) {
    const page = await admin.attempts.list({ tenantId: tenant });
    ok = page.models.some((a) => a.status === "success");
    if (!ok) { await sleep(200); }
  }
  assert(ok, `${tenant}: delivered`);
  const schema = await admin.schemas.getDestinationType(create.type);
  assert(schema.type === create.type, `${tenant}: destination type`);
  await admin.destinations.delete(tenant, dest.id);
  assert((await admin.destinations.list(tenant)).length === 0, `${tenant}: delete`);
  await admin.tenants.delete(tenant);
}

await crud("ts-kafka", {
  type: "kafka", topics: ["orders"],
  config: { brokers: process.env.KAFKA_BROKERS, topic: process.env.KAFKA_TOPIC,
            saslMechanism: "scram-sha-512", tls: "false" },
  credentials: { username: "alice", password: users.alice },
}, { credentials: { username: "bob", password: users.bob } }, (d) => d.credentials.password);

await crud("ts-pubsub", {
  type: "gcp_pubsub", topics: ["orders"],
  config: { projectId: process.env.PUBSUB_PROJECT, topic: process.env.PUBSUB_TOPIC,
            endpoint: process.env.PUBSUB_ENDPOINT },
  credentials: { serviceAccountJson: process.env.PUBSUB_KEY },
}, { config: { topic: process.env.PUBSUB_TOPIC } }, (d) => d.credentials.serviceAccountJson);
console.log("TS SDK STREAMS OK");
