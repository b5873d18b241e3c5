import { ServerConnection } from '@jupyterlab/services';

import { apiUrl, eventSourceUrl, MLPlatRequestError, requestAPI } from '../request';
import { FakeServer } from './fixtures';

describe('requestAPI', () => {
  let server: FakeServer;
  beforeEach(() => {
    server = new FakeServer();
  });

  it('sends JSON with the token header and parses the answer', async () => {
    server.routes['POST runs'] = call => ({ status: 202, json: { id: 'r1', echo: call.body } });
    const answer = await requestAPI<any>('runs', {
      method: 'POST',
      json: { notebook: 'a.ipynb' },
      settings: server.settings()
    });
    expect(answer).toEqual({ id: 'r1', echo: { notebook: 'a.ipynb' } });
    const [call] = server.calls;
    expect(call.headers.get('Authorization')).toBe('token secret-token');
    expect(call.headers.get('Content-Type')).toBe('application/json');
  });

  it('builds the query string, leaving out empty values', () => {
    const settings = server.settings();
    expect(apiUrl('runs', { limit: 5, status: undefined, pipeline: '' }, settings)).toBe(
      'http://localhost:8888/mlplat/api/runs?limit=5'
    );
    expect(apiUrl('pipelines', { notebook: 'a b/c.ipynb' }, settings)).toBe(
      'http://localhost:8888/mlplat/api/pipelines?notebook=a%20b%2Fc.ipynb'
    );
  });

  it("carries the server's message and validation details in the error", async () => {
    server.routes['POST runs'] = {
      status: 400,
      json: {
        message: 'Invalid request',
        detail: [{ loc: ['body', 'notebook'], msg: 'Field required' }]
      }
    };
    const error: any = await requestAPI('runs', {
      method: 'POST',
      json: {},
      settings: server.settings()
    }).catch((e: any) => e);
    expect(error).toBeInstanceOf(MLPlatRequestError);
    expect(error.status).toBe(400);
    expect(error.message).toBe('Invalid request\nbody.notebook: Field required');
  });

  it('names the status and URL when the error is an HTML page', async () => {
    const error: any = await requestAPI('nowhere', { settings: server.settings() }).catch(
      (e: any) => e
    );
    expect(error).toBeInstanceOf(MLPlatRequestError);
    expect(error.status).toBe(404);
    expect(error.message).toBe('404 Not Found from mlplat/api/nowhere');
  });

  it('returns text for text routes', async () => {
    server.routes['GET runs/r1/steps/train/log'] = { text: 'epoch 1\nepoch 2\n' };
    const log = await requestAPI<string>('runs/r1/steps/train/log', {
      responseType: 'text',
      settings: server.settings()
    });
    expect(log).toBe('epoch 1\nepoch 2\n');
  });

  it('refuses a success answer that is not JSON', async () => {
    server.routes['GET version'] = { text: 'hello', contentType: 'text/plain' } as any;
    await expect(requestAPI('version', { settings: server.settings() })).rejects.toThrow(
      /not JSON: hello/
    );
  });

  it('turns an unreachable server into a NetworkError', async () => {
    const settings = server.settings({
      fetch: (() => Promise.reject(new TypeError('Failed to fetch'))) as any
    });
    await expect(requestAPI('version', { settings })).rejects.toBeInstanceOf(
      ServerConnection.NetworkError
    );
  });
});

describe('eventSourceUrl', () => {
  it('relies on the cookie on the same origin', () => {
    const server = new FakeServer();
    expect(eventSourceUrl('events', server.settings())).toBe(
      'http://localhost:8888/mlplat/api/events'
    );
  });

  it('appends the token where JupyterLab appends it to websockets', () => {
    const server = new FakeServer();
    expect(eventSourceUrl('events', server.settings({ appendToken: true }))).toBe(
      'http://localhost:8888/mlplat/api/events?token=secret-token'
    );
  });
});
