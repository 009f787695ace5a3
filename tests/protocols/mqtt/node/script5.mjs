// MQTT.js with protocolVersion 5 against the hub: node script5.mjs ws://127.0.0.1:PORT/mqtt
// Prints one JSON object describing what happened; exits 1 on any failure.
import mqtt from "mqtt";

const url = process.argv[2];
const options = { protocolVersion: 5, connectTimeout: 5000, reconnectPeriod: 0 };

function next(client) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no message")), 10_000);
    client.once("message", (topic, payload, packet) => {
      clearTimeout(timer);
      const props = packet.properties ?? {};
      resolve({
        topic,
        payload: payload.toString(),
        retain: packet.retain,
        properties: {
          ...props,
          correlationData: props.correlationData?.toString("hex"),
        },
      });
    });
  });
}

async function main() {
  const sub = await mqtt.connectAsync(url, {
    ...options,
    clientId: "js5-sub",
    properties: { sessionExpiryInterval: 60, receiveMaximum: 5 },
  });
  const connack = sub.connackPacket?.properties ?? {};
  const granted = await sub.subscribeAsync("js5/#", {
    qos: 1,
    nl: true,
    properties: { subscriptionIdentifier: 9 },
  });

  const pub = await mqtt.connectAsync(url, { ...options, clientId: "js5-pub" });
  let message = next(sub);
  const ack = await pub.publishAsync("js5/req", "hello", {
    qos: 1,
    properties: {
      contentType: "text/plain",
      responseTopic: "js5/resp",
      correlationData: Buffer.from([1, 2, 3]),
      userProperties: { origin: "mqtt.js" },
      messageExpiryInterval: 60,
    },
  });
  const first = await message;

  // The subscriber's own message stays away (no local); the publisher's alias works.
  await sub.publishAsync("js5/own", "mine", { qos: 1 });
  message = next(sub);
  await pub.publishAsync("js5/alias", "one", { qos: 1, properties: { topicAlias: 3 } });
  const aliased = await message;

  // A refused publish: the acknowledgement carries the reason code (MQTT.js rejects).
  const refused = await pub.publishAsync("$SYS/nope", "x", { qos: 1 }).then(
    () => 0,
    (error) => error.code,
  );

  await Promise.all([sub.endAsync(), pub.endAsync()]);
  console.log(
    JSON.stringify({
      connack,
      granted: granted.map((g) => g.qos),
      ack: ack?.reasonCode ?? 0,
      first,
      aliased,
      refused,
    }),
  );
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
