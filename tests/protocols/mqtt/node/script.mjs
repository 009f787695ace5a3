// MQTT.js against the hub: node script.mjs ws://127.0.0.1:PORT/mqtt
// Prints one JSON object describing what happened; exits 1 on any failure.
import mqtt from "mqtt";

const url = process.argv[2];
const options = { protocolVersion: 4, connectTimeout: 5000, reconnectPeriod: 0 };
const BIG = 50_000; // spans many WebSocket frames from MQTT.js

function collect(client, count) {
  const received = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`got ${received.length} of ${count}`)), 10_000);
    client.on("message", (topic, payload, packet) => {
      received.push({
        topic,
        qos: packet.qos,
        retain: packet.retain,
        size: payload.length,
        payload: payload.length > 100 ? null : payload.toString(),
      });
      if (received.length === count) {
        clearTimeout(timer);
        resolve(received);
      }
    });
  });
}

async function main() {
  const sub = await mqtt.connectAsync(url, { ...options, clientId: "js-sub" });
  const granted = await sub.subscribeAsync("js/#", { qos: 2 });
  const live = collect(sub, 4);

  const pub = await mqtt.connectAsync(url, { ...options, clientId: "js-pub" });
  await pub.publishAsync("js/q0", "zero", { qos: 0 });
  await pub.publishAsync("js/q1", "one", { qos: 1 });
  await pub.publishAsync("js/q2", JSON.stringify({ two: 2 }), { qos: 2 });
  await pub.publishAsync("js/big", Buffer.alloc(BIG, 0x61), { qos: 1 });
  const messages = await live;

  await pub.publishAsync("kept/js", "retained", { qos: 1, retain: true });
  const late = await mqtt.connectAsync(url, { ...options, clientId: "js-late" });
  const retainedPromise = collect(late, 1);
  await late.subscribeAsync("kept/#", { qos: 1 });
  const [retained] = await retainedPromise;

  await Promise.all([sub.endAsync(), pub.endAsync(), late.endAsync()]);
  console.log(JSON.stringify({ granted: granted.map((g) => g.qos), messages, retained }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
