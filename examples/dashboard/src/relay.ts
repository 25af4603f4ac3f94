// Calling a provider through the cloudkeys relay with the official openai SDK
// (SPEC §8): two settings change, nothing else.
import OpenAI from 'openai';

/**
 * An OpenAI client that calls through the relay with a relay key (ckr_…),
 * for a credential of API type OPENAI. The provider key never leaves the
 * server. This is how a backend (or a script) uses a stored key.
 */
export function relayClient(server: string, relayKey: string): OpenAI {
  return new OpenAI({
    baseURL: `${server.replace(/\/+$/, '')}/relay/v1`,
    apiKey: relayKey,
    // Nothing from OPENAI_* environment variables: only what is given here.
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: 30_000,
  });
}

/**
 * An OpenAI client for the signed-in owner's browser: no relay key, the
 * owner's access token on /relay/credentials/{id}/v1. The server must list
 * the dashboard's origin in CLOUDKEYS_CORS_ORIGINS. The access token expires
 * like any other (15 minutes): make a new client with the current token
 * rather than keeping one.
 */
export function ownerRelayClient(server: string, credentialId: string, accessToken: string): OpenAI {
  return new OpenAI({
    baseURL: `${server.replace(/\/+$/, '')}/relay/credentials/${encodeURIComponent(credentialId)}/v1`,
    apiKey: accessToken,
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: 30_000,
    // The SDK refuses to run in a browser unless told: the "API key" here
    // is the user's own short-lived access token, not a provider key.
    dangerouslyAllowBrowser: true,
  });
}
