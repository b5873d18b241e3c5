import { MLPlatEvents } from '../events';
import { FakeEventSource, FakeServer, run } from './fixtures';

describe('MLPlatEvents', () => {
  beforeEach(() => {
    FakeEventSource.instances = [];
    jest.useFakeTimers();
  });
  afterEach(() => jest.useRealTimers());

  function make(): MLPlatEvents {
    return new MLPlatEvents({
      serverSettings: new FakeServer().settings(),
      factory: (url, init) => new FakeEventSource(url, init),
      retryDelay: 1000
    });
  }

  it('opens one stream on the events route and emits run and endpoint events', () => {
    const events = make();
    const runs: string[] = [];
    const endpoints: string[] = [];
    events.runChanged.connect((_, r) => runs.push(`${r.id}:${r.status}`));
    events.endpointChanged.connect((_, e) => endpoints.push(e.name));
    events.start();
    events.start(); // a second start does not open a second stream
    expect(FakeEventSource.instances).toHaveLength(1);
    const source = FakeEventSource.instances[0];
    expect(source.url).toBe('http://localhost:8888/mlplat/api/events');
    source.open();
    expect(events.state).toBe('open');
    source.emit('run', run('r1', 'running'));
    source.emit('run', run('r1', 'succeeded'));
    source.emit('endpoint', { name: 'churn' });
    source.emit('run', 'not json');
    expect(runs).toEqual(['r1:running', 'r1:succeeded']);
    expect(endpoints).toEqual(['churn']);
    events.dispose();
    expect(source.closed).toBe(true);
  });

  it('lets the browser reconnect a dropped stream, and retries a refused one with a growing delay', () => {
    const events = make();
    const states: string[] = [];
    events.stateChanged.connect((_, s) => states.push(s));
    events.start();
    const first = FakeEventSource.instances[0];
    first.open();
    first.fail(false); // dropped: EventSource reconnects by itself
    expect(FakeEventSource.instances).toHaveLength(1);
    expect(events.state).toBe('connecting');
    first.fail(true); // refused: closed for good
    expect(first.closed).toBe(true);
    expect(events.state).toBe('closed');
    jest.advanceTimersByTime(999);
    expect(FakeEventSource.instances).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(FakeEventSource.instances).toHaveLength(2);
    FakeEventSource.instances[1].fail(true);
    jest.advanceTimersByTime(1999);
    expect(FakeEventSource.instances).toHaveLength(2);
    jest.advanceTimersByTime(1);
    expect(FakeEventSource.instances).toHaveLength(3);
    FakeEventSource.instances[2].open();
    expect(states).toEqual([
      'connecting',
      'open',
      'connecting',
      'closed',
      'connecting',
      'closed',
      'connecting',
      'open'
    ]);
    events.dispose();
  });

  it('stops retrying when disposed', () => {
    const events = make();
    events.start();
    FakeEventSource.instances[0].fail(true);
    events.dispose();
    jest.advanceTimersByTime(120_000);
    expect(FakeEventSource.instances).toHaveLength(1);
  });
});
