// Apollo Client for cloudkeys: the access token on every request, one
// refresh and one retry on TOKEN_EXPIRED, sign-out on any other reason.
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache } from '@apollo/client';
import { ErrorLink } from '@apollo/client/link/error';
import { from, of, switchMap } from 'rxjs';
import { Auth, reasonOf, type TokenStore } from './auth.js';

export interface ClientOptions {
  /** The server, e.g. http://localhost:8080 (the GraphQL endpoint is /graphql). */
  server: string;
  store: TokenStore;
  onSignedOut?: (reason: string) => void;
}

// What the links note on an operation's context.
interface AuthContext {
  /** The access token the request was sent with (null: none). */
  cloudkeysToken?: string | null;
  /** Set on the one retry after a refresh. */
  cloudkeysRetried?: boolean;
}

/** Returns an Apollo Client and the Auth whose tokens it sends. */
export function createClient(opts: ClientOptions): { client: ApolloClient; auth: Auth } {
  const endpoint = `${opts.server.replace(/\/+$/, '')}/graphql`;
  const auth = new Auth({ endpoint, store: opts.store, onSignedOut: opts.onSignedOut });

  // Adds the current access token; runs again on a retry, so the retry
  // carries the refreshed one.
  const tokenLink = new ApolloLink((operation, forward) => {
    const token = auth.accessToken;
    operation.setContext(({ headers }: { headers?: Record<string, string> }) => ({
      headers: token ? { ...headers, authorization: `Bearer ${token}` } : { ...headers },
      cloudkeysToken: token,
    }));
    return forward(operation);
  });

  const refreshLink = new ErrorLink(({ error, result, operation, forward }) => {
    if (!CombinedGraphQLErrors.is(error)) return; // the network: nothing to do with tokens
    const ctx = operation.getContext() as AuthContext;
    const sent = ctx.cloudkeysToken;
    if (!sent) return; // login, register, refreshToken: no token was involved
    const reason = reasonOf(error.errors as Parameters<typeof reasonOf>[0]);
    if (reason === 'TOKEN_EXPIRED' && !ctx.cloudkeysRetried) {
      // The guarded field was refused before it ran: refresh once, send again.
      return from(auth.refresh(sent)).pipe(
        switchMap((ok) => {
          if (!ok) return of(result ?? { errors: error.errors });
          operation.setContext({ cloudkeysRetried: true } satisfies AuthContext);
          return forward(operation);
        }),
      );
    }
    if (reason !== null && auth.accessToken === sent) auth.signOutLocally(reason);
    return;
  });

  const client = new ApolloClient({
    link: ApolloLink.from([refreshLink, tokenLink, new HttpLink({ uri: endpoint, credentials: 'omit' })]),
    cache: new InMemoryCache(),
  });
  return { client, auth };
}
