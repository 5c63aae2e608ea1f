import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SimulatedNetwork } from '../../src/transport/simulated-network.js';
import type { Transport } from '../../src/transport/transport.js';
import { WebSocketTransport } from '../../src/transport/websocket-transport.js';
import { runTransportContract, type TransportHarness } from './transport-contract.js';

const MAX_FRAME_BYTES = 1024 * 1024;

/** Real sockets: an HTTP server on 127.0.0.1:0 per node, upgrades at /cluster handed to the transport. */
export function webSocketHarness(maxFrameBytes = MAX_FRAME_BYTES): TransportHarness {
  const servers: Server[] = [];
  const transports: Transport[] = [];
  return {
    maxFrameBytes,
    async node() {
      const transport = new WebSocketTransport({ maxFrameBytes, path: '/cluster' });
      const server = createServer((_req, res) => res.writeHead(404).end());
      server.on('upgrade', (req, socket, head) => transport.handleUpgrade(req, socket, head));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push(server);
      transports.push(transport);
      return { transport, address: `127.0.0.1:${(server.address() as AddressInfo).port}` };
    },
    async unusedAddress() {
      const server = createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      await new Promise((resolve) => server.close(resolve));
      return `127.0.0.1:${port}`;
    },
    async teardown() {
      await Promise.all(transports.map((t) => t.close()));
      for (const server of servers) server.closeAllConnections();
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    },
  };
}

function simulatedHarness(): TransportHarness {
  const network = new SimulatedNetwork({ autoDeliver: true, maxFrameBytes: MAX_FRAME_BYTES });
  const transports: Transport[] = [];
  let next = 1;
  return {
    maxFrameBytes: MAX_FRAME_BYTES,
    async node() {
      const address = `node-${next++}:8080`;
      const transport = network.transport(address);
      transports.push(transport);
      return { transport, address };
    },
    async unusedAddress() {
      return 'nobody:8080';
    },
    async teardown() {
      await Promise.all(transports.map((t) => t.close()));
    },
  };
}

runTransportContract('WebSocketTransport', () => webSocketHarness());
runTransportContract('SimulatedNetwork', simulatedHarness);
