/* eslint-disable */
import * as types from './graphql';
import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
    "\n  mutation Register($input: RegisterInput!) {\n    register(input: $input) {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n    }\n  }\n": typeof types.RegisterDocument,
    "\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n": typeof types.LoginDocument,
    "\n  mutation RefreshToken($refreshToken: String!) {\n    refreshToken(refreshToken: $refreshToken) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n": typeof types.RefreshTokenDocument,
    "\n  mutation Logout($refreshToken: String, $everywhere: Boolean = false) {\n    logout(refreshToken: $refreshToken, everywhere: $everywhere)\n  }\n": typeof types.LogoutDocument,
    "\n  query Me {\n    me {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n      sessions {\n        id\n        createdAt\n        lastUsedAt\n        expiresAt\n        clientAddr\n        userAgent\n        current\n      }\n    }\n  }\n": typeof types.MeDocument,
    "\n  query CloudProviders {\n    cloudProviders {\n      backendType\n      apiType\n      defaultBaseUrl\n    }\n  }\n": typeof types.CloudProvidersDocument,
    "\n  query CloudCredentials {\n    cloudCredentials {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n": typeof types.CloudCredentialsDocument,
    "\n  query CloudCredential($id: ID!) {\n    cloudCredential(id: $id) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n": typeof types.CloudCredentialDocument,
    "\n  mutation CreateCloudCredential($input: CreateCloudCredentialInput!) {\n    createCloudCredential(input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      createdAt\n      updatedAt\n    }\n  }\n": typeof types.CreateCloudCredentialDocument,
    "\n  mutation UpdateCloudCredential($id: ID!, $input: UpdateCloudCredentialInput!) {\n    updateCloudCredential(id: $id, input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      updatedAt\n    }\n  }\n": typeof types.UpdateCloudCredentialDocument,
    "\n  mutation DeleteCloudCredential($id: ID!) {\n    deleteCloudCredential(id: $id)\n  }\n": typeof types.DeleteCloudCredentialDocument,
    "\n  mutation TestCloudCredential($id: ID!) {\n    testCloudCredential(id: $id) {\n      ok\n      httpStatus\n      message\n      models\n    }\n  }\n": typeof types.TestCloudCredentialDocument,
    "\n  mutation CreateRelayKey($input: CreateRelayKeyInput!) {\n    createRelayKey(input: $input) {\n      secret\n      relayKey {\n        id\n        name\n        secretHint\n        createdAt\n        expiresAt\n        allowedModels\n        requestsPerMinute\n        credential {\n          id\n        }\n      }\n    }\n  }\n": typeof types.CreateRelayKeyDocument,
    "\n  query RelayKeys {\n    relayKeys {\n      id\n      name\n      secretHint\n      createdAt\n      expiresAt\n      allowedModels\n      requestsPerMinute\n      credential {\n        id\n        name\n      }\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n    }\n  }\n": typeof types.RelayKeysDocument,
    "\n  mutation RevokeRelayKey($id: ID!) {\n    revokeRelayKey(id: $id) {\n      id\n      revokedAt\n    }\n  }\n": typeof types.RevokeRelayKeyDocument,
    "\n  query CredentialUsage($id: ID!, $days: Int = 7) {\n    cloudCredential(id: $id) {\n      id\n      name\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n      usageByDay(days: $days) {\n        day\n        requests\n        errors\n        inputTokens\n        outputTokens\n      }\n      relayKeys {\n        id\n        name\n        usage {\n          requests\n          inputTokens\n          outputTokens\n        }\n      }\n    }\n  }\n": typeof types.CredentialUsageDocument,
};
const documents: Documents = {
    "\n  mutation Register($input: RegisterInput!) {\n    register(input: $input) {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n    }\n  }\n": types.RegisterDocument,
    "\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n": types.LoginDocument,
    "\n  mutation RefreshToken($refreshToken: String!) {\n    refreshToken(refreshToken: $refreshToken) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n": types.RefreshTokenDocument,
    "\n  mutation Logout($refreshToken: String, $everywhere: Boolean = false) {\n    logout(refreshToken: $refreshToken, everywhere: $everywhere)\n  }\n": types.LogoutDocument,
    "\n  query Me {\n    me {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n      sessions {\n        id\n        createdAt\n        lastUsedAt\n        expiresAt\n        clientAddr\n        userAgent\n        current\n      }\n    }\n  }\n": types.MeDocument,
    "\n  query CloudProviders {\n    cloudProviders {\n      backendType\n      apiType\n      defaultBaseUrl\n    }\n  }\n": types.CloudProvidersDocument,
    "\n  query CloudCredentials {\n    cloudCredentials {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n": types.CloudCredentialsDocument,
    "\n  query CloudCredential($id: ID!) {\n    cloudCredential(id: $id) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n": types.CloudCredentialDocument,
    "\n  mutation CreateCloudCredential($input: CreateCloudCredentialInput!) {\n    createCloudCredential(input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      createdAt\n      updatedAt\n    }\n  }\n": types.CreateCloudCredentialDocument,
    "\n  mutation UpdateCloudCredential($id: ID!, $input: UpdateCloudCredentialInput!) {\n    updateCloudCredential(id: $id, input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      updatedAt\n    }\n  }\n": types.UpdateCloudCredentialDocument,
    "\n  mutation DeleteCloudCredential($id: ID!) {\n    deleteCloudCredential(id: $id)\n  }\n": types.DeleteCloudCredentialDocument,
    "\n  mutation TestCloudCredential($id: ID!) {\n    testCloudCredential(id: $id) {\n      ok\n      httpStatus\n      message\n      models\n    }\n  }\n": types.TestCloudCredentialDocument,
    "\n  mutation CreateRelayKey($input: CreateRelayKeyInput!) {\n    createRelayKey(input: $input) {\n      secret\n      relayKey {\n        id\n        name\n        secretHint\n        createdAt\n        expiresAt\n        allowedModels\n        requestsPerMinute\n        credential {\n          id\n        }\n      }\n    }\n  }\n": types.CreateRelayKeyDocument,
    "\n  query RelayKeys {\n    relayKeys {\n      id\n      name\n      secretHint\n      createdAt\n      expiresAt\n      allowedModels\n      requestsPerMinute\n      credential {\n        id\n        name\n      }\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n    }\n  }\n": types.RelayKeysDocument,
    "\n  mutation RevokeRelayKey($id: ID!) {\n    revokeRelayKey(id: $id) {\n      id\n      revokedAt\n    }\n  }\n": types.RevokeRelayKeyDocument,
    "\n  query CredentialUsage($id: ID!, $days: Int = 7) {\n    cloudCredential(id: $id) {\n      id\n      name\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n      usageByDay(days: $days) {\n        day\n        requests\n        errors\n        inputTokens\n        outputTokens\n      }\n      relayKeys {\n        id\n        name\n        usage {\n          requests\n          inputTokens\n          outputTokens\n        }\n      }\n    }\n  }\n": types.CredentialUsageDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Register($input: RegisterInput!) {\n    register(input: $input) {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n    }\n  }\n"): (typeof documents)["\n  mutation Register($input: RegisterInput!) {\n    register(input: $input) {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation Login($email: String!, $password: String!) {\n    login(email: $email, password: $password) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RefreshToken($refreshToken: String!) {\n    refreshToken(refreshToken: $refreshToken) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation RefreshToken($refreshToken: String!) {\n    refreshToken(refreshToken: $refreshToken) {\n      accessToken\n      tokenType\n      expiresAt\n      refreshToken\n      refreshExpiresAt\n      user {\n        id\n        email\n        isAdmin\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation Logout($refreshToken: String, $everywhere: Boolean = false) {\n    logout(refreshToken: $refreshToken, everywhere: $everywhere)\n  }\n"): (typeof documents)["\n  mutation Logout($refreshToken: String, $everywhere: Boolean = false) {\n    logout(refreshToken: $refreshToken, everywhere: $everywhere)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query Me {\n    me {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n      sessions {\n        id\n        createdAt\n        lastUsedAt\n        expiresAt\n        clientAddr\n        userAgent\n        current\n      }\n    }\n  }\n"): (typeof documents)["\n  query Me {\n    me {\n      id\n      email\n      isAdmin\n      status\n      createdAt\n      sessions {\n        id\n        createdAt\n        lastUsedAt\n        expiresAt\n        clientAddr\n        userAgent\n        current\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CloudProviders {\n    cloudProviders {\n      backendType\n      apiType\n      defaultBaseUrl\n    }\n  }\n"): (typeof documents)["\n  query CloudProviders {\n    cloudProviders {\n      backendType\n      apiType\n      defaultBaseUrl\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CloudCredentials {\n    cloudCredentials {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n"): (typeof documents)["\n  query CloudCredentials {\n    cloudCredentials {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CloudCredential($id: ID!) {\n    cloudCredential(id: $id) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n"): (typeof documents)["\n  query CloudCredential($id: ID!) {\n    cloudCredential(id: $id) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      keyStatusMessage\n      createdAt\n      updatedAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateCloudCredential($input: CreateCloudCredentialInput!) {\n    createCloudCredential(input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      createdAt\n      updatedAt\n    }\n  }\n"): (typeof documents)["\n  mutation CreateCloudCredential($input: CreateCloudCredentialInput!) {\n    createCloudCredential(input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      createdAt\n      updatedAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation UpdateCloudCredential($id: ID!, $input: UpdateCloudCredentialInput!) {\n    updateCloudCredential(id: $id, input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      updatedAt\n    }\n  }\n"): (typeof documents)["\n  mutation UpdateCloudCredential($id: ID!, $input: UpdateCloudCredentialInput!) {\n    updateCloudCredential(id: $id, input: $input) {\n      id\n      name\n      backendType\n      apiType\n      baseUrl\n      apiKeyHint\n      keyStatus\n      updatedAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation DeleteCloudCredential($id: ID!) {\n    deleteCloudCredential(id: $id)\n  }\n"): (typeof documents)["\n  mutation DeleteCloudCredential($id: ID!) {\n    deleteCloudCredential(id: $id)\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation TestCloudCredential($id: ID!) {\n    testCloudCredential(id: $id) {\n      ok\n      httpStatus\n      message\n      models\n    }\n  }\n"): (typeof documents)["\n  mutation TestCloudCredential($id: ID!) {\n    testCloudCredential(id: $id) {\n      ok\n      httpStatus\n      message\n      models\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation CreateRelayKey($input: CreateRelayKeyInput!) {\n    createRelayKey(input: $input) {\n      secret\n      relayKey {\n        id\n        name\n        secretHint\n        createdAt\n        expiresAt\n        allowedModels\n        requestsPerMinute\n        credential {\n          id\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  mutation CreateRelayKey($input: CreateRelayKeyInput!) {\n    createRelayKey(input: $input) {\n      secret\n      relayKey {\n        id\n        name\n        secretHint\n        createdAt\n        expiresAt\n        allowedModels\n        requestsPerMinute\n        credential {\n          id\n        }\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query RelayKeys {\n    relayKeys {\n      id\n      name\n      secretHint\n      createdAt\n      expiresAt\n      allowedModels\n      requestsPerMinute\n      credential {\n        id\n        name\n      }\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n    }\n  }\n"): (typeof documents)["\n  query RelayKeys {\n    relayKeys {\n      id\n      name\n      secretHint\n      createdAt\n      expiresAt\n      allowedModels\n      requestsPerMinute\n      credential {\n        id\n        name\n      }\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  mutation RevokeRelayKey($id: ID!) {\n    revokeRelayKey(id: $id) {\n      id\n      revokedAt\n    }\n  }\n"): (typeof documents)["\n  mutation RevokeRelayKey($id: ID!) {\n    revokeRelayKey(id: $id) {\n      id\n      revokedAt\n    }\n  }\n"];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(source: "\n  query CredentialUsage($id: ID!, $days: Int = 7) {\n    cloudCredential(id: $id) {\n      id\n      name\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n      usageByDay(days: $days) {\n        day\n        requests\n        errors\n        inputTokens\n        outputTokens\n      }\n      relayKeys {\n        id\n        name\n        usage {\n          requests\n          inputTokens\n          outputTokens\n        }\n      }\n    }\n  }\n"): (typeof documents)["\n  query CredentialUsage($id: ID!, $days: Int = 7) {\n    cloudCredential(id: $id) {\n      id\n      name\n      usage {\n        requests\n        errors\n        inputTokens\n        outputTokens\n        lastUsedAt\n      }\n      usageByDay(days: $days) {\n        day\n        requests\n        errors\n        inputTokens\n        outputTokens\n      }\n      relayKeys {\n        id\n        name\n        usage {\n          requests\n          inputTokens\n          outputTokens\n        }\n      }\n    }\n  }\n"];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> = TDocumentNode extends DocumentNode<  infer TType,  any>  ? TType  : never;