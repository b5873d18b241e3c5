import { DRIVE_NAME, parseStepNotebookPath, StepNotebookDrive, stepNotebookPath } from '../drive';
import { errorCellIndex } from '../notebook/decorations';
import { waitUntilLive } from '../notebook/tools';
import { FakeServer } from './fixtures';

describe('errorCellIndex', () => {
  const ids = ['a', 'b', 'c', undefined, 'e'];
  it('finds the cell by id, then by index, then by the message', () => {
    expect(errorCellIndex({ message: 'x', cell_id: 'c', cell_index: 1 }, ids)).toBe(2);
    expect(errorCellIndex({ message: 'x', cell_id: 'zzz', cell_index: 1 }, ids)).toBe(1);
    expect(
      errorCellIndex({ message: 'cell 4 ("y = z"): name z is not defined; expected ...' }, ids)
    ).toBe(4);
    expect(errorCellIndex({ message: 'a cycle: a -> b -> a' }, ids)).toBeNull();
  });
});

describe('StepNotebookDrive', () => {
  const server = new FakeServer();
  server.routes['GET runs/r1/steps/train/notebook'] = {
    json: { nbformat: 4, nbformat_minor: 5, metadata: {}, cells: [] }
  };
  const drive = new StepNotebookDrive(server.client(), server.settings());

  it('maps runs and steps to paths', () => {
    expect(stepNotebookPath('r1', 'train')).toBe(`${DRIVE_NAME}:r1/train.ipynb`);
    expect(parseStepNotebookPath('r1/train.ipynb')).toEqual({ runId: 'r1', step: 'train' });
    expect(parseStepNotebookPath('r1/train.py')).toBeNull();
    expect(parseStepNotebookPath('a/b/c.ipynb')).toBeNull();
  });

  it('serves the executed notebook read-only', async () => {
    const model = await drive.get('r1/train.ipynb', { content: true });
    expect(model).toMatchObject({
      name: 'train.ipynb',
      path: 'r1/train.ipynb',
      type: 'notebook',
      format: 'json',
      writable: false
    });
    expect((model.content as any).nbformat).toBe(4);
    const light = await drive.get('r1/train.ipynb', { content: false });
    expect(light.content).toBeNull();
    await expect(drive.save()).rejects.toThrow(/read-only/);
    await expect(drive.get('nope')).rejects.toThrow(/expected <run id>\/<step>.ipynb/);
  });

  it('fails with the server message for a missing notebook', async () => {
    server.routes['GET runs/r1/steps/ghost/notebook'] = {
      status: 404,
      json: { message: "run r1 has no step 'ghost'" }
    };
    await expect(drive.get('r1/ghost.ipynb')).rejects.toThrow("run r1 has no step 'ghost'");
  });
});

describe('waitUntilLive', () => {
  it('retries while the serve process is not ready, then returns the answer', async () => {
    const server = new FakeServer();
    let calls = 0;
    server.routes['POST endpoints/churn/try'] = () => {
      calls += 1;
      return calls < 3
        ? { status: 503, json: { message: 'the serve process is starting' } }
        : {
            json: {
              endpoint: 'churn',
              url: 'u',
              status: 200,
              ok: true,
              request: {},
              response: { predictions: [1] },
              duration_ms: 3,
              curl: 'c'
            }
          };
    };
    const { answer, problem } = await waitUntilLive(server.client(), 'churn', 10_000);
    expect(problem).toBeNull();
    expect(answer?.response).toEqual({ predictions: [1] });
    expect(calls).toBe(3);
  });

  it('stops at once on a client error, with the server message', async () => {
    const server = new FakeServer();
    server.routes['POST endpoints/churn/try'] = {
      status: 409,
      json: { message: "endpoint 'churn' needs its token" }
    };
    const { answer, problem } = await waitUntilLive(server.client(), 'churn', 10_000);
    expect(answer).toBeNull();
    expect(problem).toBe("Try it: endpoint 'churn' needs its token");
    expect(server.calls).toHaveLength(1);
  });

  it('gives up after the timeout', async () => {
    const server = new FakeServer();
    server.routes['POST endpoints/churn/try'] = {
      status: 502,
      json: { message: 'no serve process' }
    };
    const { problem } = await waitUntilLive(server.client(), 'churn', 600);
    expect(problem).toMatch(/^Not answering yet \(no serve process\)/);
  });
});
