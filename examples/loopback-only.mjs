// Preloaded into a Node.js MCP server (`node --import ./examples/loopback-only.mjs server.js`)
// so that every TCP server it starts listens on 127.0.0.1 only. Servers such as
// server-everything call `app.listen(PORT)`, which binds every interface: anyone on the
// network could then reach the unauthenticated MCP server around authgate. The server's own
// code stays unmodified.
//
// With LISTEN_FD set (the test suite), the first server started listens on that inherited,
// already-bound socket instead of the port it asked for.
import net from "node:net";

const listen = net.Server.prototype.listen;
let inherited = process.env.LISTEN_FD;
net.Server.prototype.listen = function (...args) {
  if (inherited !== undefined) {
    const fd = Number(inherited);
    inherited = undefined;
    const callback = args.find((a) => typeof a === "function");
    return listen.call(this, { fd }, callback);
  }
  const [first] = args;
  if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback]): insert the host when none is given.
    if (typeof args[1] !== "string") args.splice(1, 0, "127.0.0.1");
  } else if (first && typeof first === "object" && first.path === undefined && first.host === undefined) {
    args[0] = { ...first, host: "127.0.0.1" };
  } else if (first === undefined || typeof first === "function") {
    args.unshift(0, "127.0.0.1");
  }
  return listen.apply(this, args);
};
