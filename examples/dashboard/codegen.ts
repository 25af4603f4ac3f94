// graphql-codegen configuration: `npm run codegen` writes src/gql/ (committed)
// from the operations in src/operations.ts.
//
// The schema: by default the schema files committed in this repository
// (../../schema/*.graphql), so generating needs no running server. Against a
// server, set CLOUDKEYS_SCHEMA to its SDL, e.g.
//   CLOUDKEYS_SCHEMA=http://localhost:8080/schema.graphql npm run codegen
// (/schema.graphql serves the same files, byte for byte; it is off in
// production unless CLOUDKEYS_INTROSPECTION=true). The Go test
// server/dashboard_example_test.go generates from a live server's
// /schema.graphql into a temporary directory (CODEGEN_OUT) and fails when the
// result differs from the committed src/gql/.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: process.env.CLOUDKEYS_SCHEMA ?? '../../schema/*.graphql',
  documents: ['src/operations.ts'],
  ignoreNoDocuments: false,
  generates: {
    [process.env.CODEGEN_OUT ?? './src/gql/']: {
      preset: 'client',
      presetConfig: {
        // Plain result types: no useFragment() unmasking needed.
        fragmentMasking: false,
      },
      config: {
        // cloudkeys' custom scalars. Without these, codegen types them as
        // `unknown`. Time is an RFC 3339 string in UTC with milliseconds
        // (2026-12-03T12:00:00.000Z): keep it a string, parse with new Date()
        // where you need arithmetic. Count is an integer up to 2^53 - 1, sent
        // as a JSON number, so a JavaScript number holds it exactly.
        scalars: {
          Time: 'string',
          Count: 'number',
        },
        // Only the types the operations use (and the enums and inputs they
        // name): a schema change elsewhere leaves the generated files alone.
        onlyOperationTypes: true,
        enumsAsTypes: true,
        useTypeImports: true,
        strictScalars: true,
        avoidOptionals: { field: true, inputValue: false, object: true, defaultValue: false },
      },
    },
  },
};

export default config;
