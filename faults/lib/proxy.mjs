// A TCP proxy on 127.0.0.1 in front of the server, one per client, so a test
// can cut that client's connection abruptly (a reset, no closing handshake:
// frames in flight are lost), as a phone losing its network does.
import { connect, createServer } from "node:net";

export async function chaosProxy(targetPort) {
  const live = new Set();
  const server = createServer((down) => {
    const up = connect(targetPort, "127.0.0.1");
    const pair = { down, up };
    live.add(pair);
    const end = () => {
      live.delete(pair);
      down.destroy();
      up.destroy();
    };
    down.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: server.address().port,
    url: `http://127.0.0.1:${server.address().port}`,
    /** Resets every connection through this proxy at once. */
    cut() {
      for (const { down, up } of live) {
        down.resetAndDestroy();
        up.resetAndDestroy();
      }
      live.clear();
    },
    close() {
      this.cut();
      server.close();
    },
  };
}
