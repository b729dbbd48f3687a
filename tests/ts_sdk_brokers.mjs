// Hookdeck's official TypeScript SDK against a live outpost: create, read, update and
// delete a rabbitmq and an azure_servicebus destination. The SDK validates every response
// with its zod schemas; any mismatch throws and the process exits 1.
import { Outpost } from "@hookdeck/outpost-sdk";

const admin = new Outpost({ apiKey: process.env.OUTPOST_KEY, serverURL: process.env.OUTPOST_URL });
const assert = (ok, what) => { if (!ok) { throw new Error(`failed: ${what}`); } };

await admin.tenants.upsert("ts-brokers", {});

const rmq = await admin.destinations.create("ts-brokers", {
  type: "rabbitmq", topics: ["orders"],
  config: { serverUrl: process.env.RABBIT_SERVER, exchange: "ts-exchange", tls: "false" },
  credentials: { username: "outpost", password: process.env.RABBIT_PASSWORD },
});
assert(rmq.type === "rabbitmq" && rmq.target === "ts-exchange", "create rabbitmq");
assert(rmq.credentials.password !== process.env.RABBIT_PASSWORD, "password masked");
const gotRmq = await admin.destinations.get("ts-brokers", rmq.id);
assert(gotRmq.config.serverUrl === process.env.RABBIT_SERVER, "get rabbitmq");
const rmqUpdated = await admin.destinations.update("ts-brokers", rmq.id,
  { type: "rabbitmq", config: { exchange: "ts-exchange-2" } });
assert(rmqUpdated.config.exchange === "ts-exchange-2", "update rabbitmq");

const asb = await admin.destinations.create("ts-brokers", {
  type: "azure_servicebus", topics: ["orders"],
  config: { name: "ts-queue" },
  credentials: { connectionString: process.env.SB_CONNECTION },
});
assert(asb.type === "azure_servicebus" && asb.target === "ts-queue", "create azure_servicebus");
assert(asb.credentials.connectionString !== process.env.SB_CONNECTION, "connection string masked");
const asbUpdated = await admin.destinations.update("ts-brokers", asb.id,
  { type: "azure_servicebus", config: { name: "ts-topic" } });
assert(asbUpdated.config.name === "ts-topic", "update azure_servicebus");
assert((await admin.destinations.list("ts-brokers")).length === 2, "list destinations");

const types = (await admin.schemas.listDestinationTypes()).map((t) => t.type);
assert(types.includes("rabbitmq") && types.includes("azure_servicebus"), "destination types");

await admin.destinations.delete("ts-brokers", rmq.id);
await admin.destinations.delete("ts-brokers", asb.id);
assert((await admin.destinations.list("ts-brokers")).length === 0, "deleted");
await admin.tenants.delete("ts-brokers");
console.log("TS SDK brokers OK");
