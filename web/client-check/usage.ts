// Uses the generated client the way an application would; `tsc --noEmit` fails if the
// generated types and this code disagree.
import type { ResultOf, VariablesOf } from "@graphql-typed-document-node/core";
import { DownDevicesDocument, LoginDocument } from "./generated/client";

type Down = ResultOf<typeof DownDevicesDocument>;
const variables: VariablesOf<typeof DownDevicesDocument> = { first: 10 };

export function hostnames(result: Down): string[] {
  return result.devices.edges.map((edge) => edge.node.hostname);
}

export function interfaceCounts(result: Down): number[] {
  return result.devices.edges.map((edge) => edge.node.interfaces.totalCount);
}

export function firstToken(result: ResultOf<typeof LoginDocument>): string | null | undefined {
  return result.login.token;
}

export const example = variables;
