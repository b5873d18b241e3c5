import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Every REST route of the server extension lives below this path. */
export const API_PATH = 'mlplat/api';

/**
 * An error answer of the server extension: the HTTP status and the server's own message.
 *
 * The server renders errors as `{"message": ..., "reason": ..., "detail": [...]}`; `message`
 * is what the user sees (in a notification), `detail` lists a validation error's fields.
 */
export class MLPlatRequestError extends ServerConnection.ResponseError {
  constructor(
    response: Response,
    message: string,
    readonly body: unknown = null
  ) {
    super(response, message);
    this.name = 'MLPlatRequestError';
  }

  /** The HTTP status code of the answer. */
  get status(): number {
    return this.response.status;
  }
}

/** Options of {@link requestAPI} beyond `fetch`'s own. */
export interface IRequestOptions extends RequestInit {
  /** The JSON body to send (serialised here). */
  json?: unknown;
  /** Query parameters; `undefined` and `null` values are left out. */
  query?: Record<string, string | number | boolean | null | undefined>;
  /** `text`: return the body as a string instead of parsing it as JSON. */
  responseType?: 'json' | 'text';
  /** The server to talk to; default: JupyterLab's own (`ServerConnection.makeSettings()`). */
  settings?: ServerConnection.ISettings;
}

/** The absolute URL of a route below `mlplat/api/`, with its query string. */
export function apiUrl(
  endPoint: string,
  query: IRequestOptions['query'] = {},
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const url = URLExt.join(settings.baseUrl, API_PATH, endPoint);
  const params = Object.entries(query)
    .filter(([, value]) => value !== undefined && value !== null && value !== '')
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  return params.length > 0 ? `${url}?${params.join('&')}` : url;
}

/** The message to show for an error answer: the server's own words when it gave any. */
export function errorMessage(
  body: unknown,
  text: string,
  response: Response,
  where: string
): string {
  if (body && typeof body === 'object') {
    const { message, detail } = body as { message?: unknown; detail?: unknown };
    let result = typeof message === 'string' && message ? message : '';
    if (Array.isArray(detail) && detail.length > 0) {
      const fields = detail
        .map((item: any) => {
          const where = Array.isArray(item?.loc) ? item.loc.join('.') : '';
          return where ? `${where}: ${item?.msg ?? ''}` : String(item?.msg ?? '');
        })
        .filter(line => line.length > 0);
      result = [result || 'Invalid request', ...fields].join('\n');
    }
    if (result) {
      return result;
    }
  }
  const plain = text.trim();
  if (plain && plain.length < 500 && !plain.startsWith('<')) {
    return plain;
  }
  return `${response.status} ${response.statusText || 'error'} from ${where}`;
}

/**
 * Call the jupyter-mlplat server extension. Every HTTP call of the frontend goes through here.
 *
 * Authentication is JupyterLab's (`ServerConnection.makeRequest`: the token header and the
 * `_xsrf` cookie as `X-XSRFToken`).
 *
 * @param endPoint - path under `mlplat/api/` (e.g. `runs/abc/cancel`)
 * @param options - fetch options, plus `json`, `query`, `responseType` and `settings`
 * @returns the parsed JSON body (`null` for an empty body), or the text with `responseType: 'text'`
 * @throws {MLPlatRequestError} when the server answers with an error status
 * @throws {ServerConnection.NetworkError} when the server cannot be reached
 */
export async function requestAPI<T>(endPoint = '', options: IRequestOptions = {}): Promise<T> {
  const { json, query, responseType = 'json', settings: given, ...init } = options;
  const settings = given ?? ServerConnection.makeSettings();
  const requestUrl = apiUrl(endPoint, query, settings);
  // Revalidate instead of JupyterLab's default no-store, which appends a cache-busting
  // `?<timestamp>` that the server's strict query validation would refuse.
  init.cache = init.cache ?? 'no-cache';
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers = { 'Content-Type': 'application/json', ...(init.headers ?? {}) };
  }

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(requestUrl, init, settings);
  } catch (error) {
    if (error instanceof ServerConnection.NetworkError) {
      throw error;
    }
    throw new ServerConnection.NetworkError(error as TypeError);
  }

  const text = await response.text();
  let data: any = null;
  const isJson = (response.headers.get('Content-Type') ?? '').includes('json');
  if (text.length > 0 && (isJson || responseType === 'json')) {
    try {
      data = JSON.parse(text);
    } catch {
      if (response.ok && responseType === 'json') {
        throw new MLPlatRequestError(
          response,
          `The server answered ${endPoint} with something that is not JSON: ${text.slice(0, 200)}`
        );
      }
    }
  }

  if (!response.ok) {
    const where = `${API_PATH}/${endPoint}`;
    throw new MLPlatRequestError(response, errorMessage(data, text, response, where), data);
  }
  return (responseType === 'text' ? text : data) as T;
}

/**
 * The URL of a server-sent-events route, authenticated as JupyterLab authenticates websockets.
 *
 * `EventSource` cannot send headers: the session cookie authenticates same-origin streams, and
 * where JupyterLab appends its token to websocket URLs (`settings.appendToken`: a server on
 * another host), the token goes into the query string the same way.
 */
export function eventSourceUrl(
  endPoint: string,
  settings: ServerConnection.ISettings = ServerConnection.makeSettings()
): string {
  const query: Record<string, string> = {};
  if (settings.appendToken && settings.token) {
    query.token = settings.token;
  }
  return apiUrl(endPoint, query, settings);
}
