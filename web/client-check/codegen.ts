// Generates the typed client an SDK user would: schema types plus typed documents for the
// operations in operations/*.graphql, all from the committed schema.graphql alone.
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: "operations/*.graphql",
  generates: {
    "generated/client.ts": {
      plugins: ["typescript", "typescript-operations", "typed-document-node"],
      config: {
        strictScalars: true,
        scalars: { DateTime: "string", BigInt: "string", JSON: "unknown" },
        enumsAsTypes: true,
      },
    },
  },
};

export default config;
