import type http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A server listening: the port it got (0 asks for any), and a close that ends open connections too. */
export interface ListeningServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts `server` on `host:port`; rejects when it cannot listen (the port taken, say). */
export async function listen(server: http.Server, port: number, host: string): Promise<ListeningServer> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
