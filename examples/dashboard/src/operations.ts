// Every operation the dashboard sends. `npm run codegen` reads this file and
// writes src/gql/, where graphql() returns a TypedDocumentNode: Apollo Client
// then knows each result's and each variable's type.
import { graphql } from './gql/index.js';

// Accounts and sessions.

export const RegisterDocument = graphql(`
  mutation Register($input: RegisterInput!) {
    register(input: $input) {
      id
      email
      isAdmin
      status
      createdAt
    }
  }
`);

export const LoginDocument = graphql(`
  mutation Login($email: String!, $password: String!) {
    login(email: $email, password: $password) {
      accessToken
      tokenType
      expiresAt
      refreshToken
      refreshExpiresAt
      user {
        id
        email
        isAdmin
      }
    }
  }
`);

export const RefreshTokenDocument = graphql(`
  mutation RefreshToken($refreshToken: String!) {
    refreshToken(refreshToken: $refreshToken) {
      accessToken
      tokenType
      expiresAt
      refreshToken
      refreshExpiresAt
      user {
        id
        email
        isAdmin
      }
    }
  }
`);

export const LogoutDocument = graphql(`
  mutation Logout($refreshToken: String, $everywhere: Boolean = false) {
    logout(refreshToken: $refreshToken, everywhere: $everywhere)
  }
`);

export const MeDocument = graphql(`
  query Me {
    me {
      id
      email
      isAdmin
      status
      createdAt
      sessions {
        id
        createdAt
        lastUsedAt
        expiresAt
        clientAddr
        userAgent
        current
      }
    }
  }
`);

// Cloud credentials.

export const CloudProvidersDocument = graphql(`
  query CloudProviders {
    cloudProviders {
      backendType
      apiType
      defaultBaseUrl
    }
  }
`);

export const CloudCredentialsDocument = graphql(`
  query CloudCredentials {
    cloudCredentials {
      id
      name
      backendType
      apiType
      baseUrl
      apiKeyHint
      keyStatus
      keyStatusMessage
      createdAt
      updatedAt
    }
  }
`);

export const CloudCredentialDocument = graphql(`
  query CloudCredential($id: ID!) {
    cloudCredential(id: $id) {
      id
      name
      backendType
      apiType
      baseUrl
      apiKeyHint
      keyStatus
      keyStatusMessage
      createdAt
      updatedAt
    }
  }
`);

export const CreateCloudCredentialDocument = graphql(`
  mutation CreateCloudCredential($input: CreateCloudCredentialInput!) {
    createCloudCredential(input: $input) {
      id
      name
      backendType
      apiType
      baseUrl
      apiKeyHint
      keyStatus
      createdAt
      updatedAt
    }
  }
`);

export const UpdateCloudCredentialDocument = graphql(`
  mutation UpdateCloudCredential($id: ID!, $input: UpdateCloudCredentialInput!) {
    updateCloudCredential(id: $id, input: $input) {
      id
      name
      backendType
      apiType
      baseUrl
      apiKeyHint
      keyStatus
      updatedAt
    }
  }
`);

export const DeleteCloudCredentialDocument = graphql(`
  mutation DeleteCloudCredential($id: ID!) {
    deleteCloudCredential(id: $id)
  }
`);

export const TestCloudCredentialDocument = graphql(`
  mutation TestCloudCredential($id: ID!) {
    testCloudCredential(id: $id) {
      ok
      httpStatus
      message
      models
    }
  }
`);

// Relay keys and usage.

export const CreateRelayKeyDocument = graphql(`
  mutation CreateRelayKey($input: CreateRelayKeyInput!) {
    createRelayKey(input: $input) {
      secret
      relayKey {
        id
        name
        secretHint
        createdAt
        expiresAt
        allowedModels
        requestsPerMinute
        credential {
          id
        }
      }
    }
  }
`);

export const RelayKeysDocument = graphql(`
  query RelayKeys {
    relayKeys {
      id
      name
      secretHint
      createdAt
      expiresAt
      allowedModels
      requestsPerMinute
      credential {
        id
        name
      }
      usage {
        requests
        errors
        inputTokens
        outputTokens
        lastUsedAt
      }
    }
  }
`);

export const RevokeRelayKeyDocument = graphql(`
  mutation RevokeRelayKey($id: ID!) {
    revokeRelayKey(id: $id) {
      id
      revokedAt
    }
  }
`);

export const CredentialUsageDocument = graphql(`
  query CredentialUsage($id: ID!, $days: Int = 7) {
    cloudCredential(id: $id) {
      id
      name
      usage {
        requests
        errors
        inputTokens
        outputTokens
        lastUsedAt
      }
      usageByDay(days: $days) {
        day
        requests
        errors
        inputTokens
        outputTokens
      }
      relayKeys {
        id
        name
        usage {
          requests
          inputTokens
          outputTokens
        }
      }
    }
  }
`);
