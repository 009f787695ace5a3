// AutobahnJS against the hub: pub/sub and RPC over one serializer, results as JSON on stdout.
// Usage: node script.mjs ws://127.0.0.1:PORT/ json|msgpack
import autobahn from "autobahn";

const [url, name] = process.argv.slice(2);
const serializers = {
  json: () => new autobahn.serializer.JSONSerializer(),
  msgpack: () => new autobahn.serializer.MsgpackSerializer(),
};
const connection = new autobahn.Connection({
  url,
  realm: "realm1",
  serializers: [serializers[name]()],
  max_retries: 0,
});

function fail(error) {
  console.error(error);
  process.exit(1);
}
setTimeout(() => fail("timed out"), 20000).unref();

async function errorUri(promise) {
  try {
    await promise;
    return null;
  } catch (error) {
    return error.error;
  }
}

connection.onopen = async (session) => {
  try {
    const out = { session: session.id, serializer: name };
    const prefix = `js.${name}`;

    await session.register(`${prefix}.echo`, (args, kwargs) => new autobahn.Result(args, kwargs));
    await session.register(`${prefix}.count`, (args, kwargs, details) => {
      for (let i = 1; i <= args[0]; i++) details.progress([i]);
      return "done";
    });

    const event = new Promise((resolve) => {
      session.subscribe(`${prefix}.topic`, (args, kwargs, details) => resolve({ args, kwargs }));
    });
    // Let the subscription settle before publishing to ourselves.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const published = await session.publish(`${prefix}.topic`, [1, "two"], { three: 3 }, {
      acknowledge: true,
      exclude_me: false,
    });
    out.published = typeof published.id === "number";
    out.event = await event;

    out.add = [await session.call("math.add", [2, 3]), await session.call("math.add", [], { a: 4, b: 6 })];
    const echoed = await session.call(`${prefix}.echo`, [1, [2]], { k: "v" });
    out.echo = { args: echoed.args, kwargs: echoed.kwargs };
    out.missing = await errorUri(session.call("no.such.procedure"));
    out.invalid = await errorUri(session.call("math.add", ["x", 1]));

    // Progressive results arrive as the promise's progress notifications (when.js).
    const progress = [];
    out.final = await session
      .call(`${prefix}.count`, [3], {}, { receive_progress: true })
      .then(
        (result) => result,
        (error) => Promise.reject(error),
        (update) => progress.push(update),
      );
    out.progress = progress;
    out.greet = await session.call("py.greet", [name]);

    // Published last: the Python side watches for it on channels.v1 (js/<name>/done).
    await session.publish(`js.${name}.done`, [{ ok: true }], {}, { acknowledge: true });
    console.log(JSON.stringify(out));
    connection.close();
  } catch (error) {
    fail(error);
  }
};
connection.onclose = (reason, details) => {
  if (reason !== "closed") fail(`connection ${reason}: ${JSON.stringify(details)}`);
  return true;
};
connection.open();
