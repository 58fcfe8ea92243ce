/**
 * Generates the TypeScript client's protocol types (client/src/schema.ts) from the OpenAPI description the
 * daemon serves: `npm run generate:client`. A test regenerates them and fails when the file is not current.
 */
import { writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import openapiTS, { astToString, type OpenAPI3 } from "openapi-typescript";
import { format, resolveConfig } from "prettier";
import { openapiDocument } from "../src/proxy/openapi.js";

export const SCHEMA_FILE = "client/src/schema.ts";

const HEADER = `/**
 * The protocol's types, generated from the OpenAPI description (src/proxy/openapi.ts) by
 * \`npm run generate:client\`. Do not edit: a test fails when this file and the description differ.
 */
`;

export async function renderClientSchema(): Promise<string> {
  const ast = await openapiTS(structuredClone(openapiDocument) as unknown as OpenAPI3);
  const config = await resolveConfig(SCHEMA_FILE);
  return format(HEADER + astToString(ast), { ...config, filepath: SCHEMA_FILE });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(SCHEMA_FILE, await renderClientSchema());
  console.log(`wrote ${SCHEMA_FILE}`);
}
