// Hookdeck's official TypeScript SDK against a live outpost: create, read, update and
// delete aws_sqs and aws_s3 destinations (1.6.0 has no aws_eventbridge type), and publish
// one event to the SQS one. The SDK validates every response with its zod schemas; any
// mismatch throws and the process exits 1.
import { Outpost } from "@hookdeck/outpost-sdk";

const admin = new Outpost({ apiKey: process.env.OUTPOST_KEY, serverURL: process.env.OUTPOST_URL });
const assert = (ok, what) => { if (!ok) { throw new Error(`failed: ${what}`); } };
const tenant = "ts-aws";
await admin.tenants.upsert(tenant, {});
const credentials = { key: "AKIATSAWS", secret: "ts-secret-value-12" };

async function crud(body, patch) {
  const dest = await admin.destinations.create(tenant, body);
  assert(dest.type === body.type && dest.credentials.secret !== credentials.secret,
         `${body.type}: create, secret masked`);
  assert((await admin.destinations.get(tenant, dest.id)).id === dest.id, `${body.type}: get`);
  const updated = await admin.destinations.update(tenant, dest.id, { type: body.type, ...patch });
  assert(updated.id === dest.id, `${body.type}: update`);
  return updated;
}

const sqs = await crud(
  { type: "aws_sqs", topics: ["orders"], credentials,
    config: { queueUrl: process.env.QUEUE_URL, endpoint: process.env.MOTO_URL } },
  { credentials: { key: "AKIATSROTATED", secret: "ts-secret-value-34" } });
const s3 = await crud(
  { type: "aws_s3", topics: ["users"], credentials,
    config: { bucket: "ts-bucket", region: "us-west-2" } },
  { config: { storageClass: "STANDARD_IA" } });
assert(s3.config.storageClass === "STANDARD_IA", "aws_s3: storage class updated");
assert((await admin.destinations.list(tenant)).length === 2, "list destinations");

const pub = await admin.publish({ tenantId: tenant, topic: "orders", id: "ts-aws-evt-1",
                                  data: { via: "ts" } });
assert(pub.destinationIds.join() === sqs.id, "publish to the SQS destination");
for (let i = 0; i < 100; i++) {
  const attempts = await admin.attempts.list({ tenantId: tenant });
  if (attempts.models.length) {
    assert(attempts.models[0].status === "success", "delivered");
    break;
  }
  await new Promise((r) => setTimeout(r, 200));
}

await admin.destinations.delete(tenant, sqs.id);
await admin.destinations.delete(tenant, s3.id);
await admin.tenants.delete(tenant);
console.log("TS SDK AWS OK");
