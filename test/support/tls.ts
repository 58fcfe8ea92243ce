/** A self-signed certificate for localhost and 127.0.0.1, made with openssl for the TLS tests. */
import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

export interface SelfSigned {
  certFile: string;
  keyFile: string;
  /** the certificate itself, for clients to trust */
  cert: Buffer;
}

/** Writes cert.pem and key.pem into dir (EC P-256, one day). */
export async function selfSignedCert(dir: string): Promise<SelfSigned> {
  const certFile = join(dir, "cert.pem");
  const keyFile = join(dir, "key.pem");
  await promisify(execFile)("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=localhost",
    "-addext",
    "subjectAltName=DNS:localhost,IP:127.0.0.1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  return { certFile, keyFile, cert: await readFile(certFile) };
}
