import { formatDuration, layoutGraph, pipelineGraph, runGraph } from '../graph';
import { PIPELINE, run, stepRun } from './fixtures';

describe('pipelineGraph', () => {
  it('says which steps a run now would take from the cache', () => {
    const graph = pipelineGraph(PIPELINE);
    expect(graph.nodes.map(n => [n.id, n.state])).toEqual([
      ['load', 'cached'],
      ['split', 'will-run'],
      ['train', 'will-run']
    ]);
    expect(graph.nodes[2].detail).toBe('would run · 1 GPU');
  });

  it('draws data edges with their names and ordering edges without', () => {
    const { edges } = pipelineGraph(PIPELINE);
    expect(edges).toEqual([
      { id: 'load->split', source: 'load', target: 'split', names: ['df'] },
      { id: 'split->train', source: 'split', target: 'train', names: ['df_train'] },
      { id: 'load->train', source: 'load', target: 'train', names: [] }
    ]);
  });

  it('colours the steps of a live run by their status', () => {
    const live = run('r', 'running', {
      steps: [stepRun('load', 'cached'), stepRun('split', 'succeeded', { duration: 2.25 })]
    });
    const graph = pipelineGraph(PIPELINE, live);
    expect(graph.nodes.map(n => [n.id, n.state, n.detail])).toEqual([
      ['load', 'cached', 'from cache'],
      ['split', 'succeeded', '2.3 s'],
      ['train', 'not-in-run', '']
    ]);
  });
});

describe('runGraph', () => {
  it("shows the run's steps, with edges only between them", () => {
    const graph = runGraph(
      run('r', 'failed', { steps: [stepRun('load', 'succeeded'), stepRun('split', 'failed')] }),
      PIPELINE
    );
    expect(graph.nodes.map(n => n.state)).toEqual(['succeeded', 'failed']);
    expect(graph.edges.map(e => e.id)).toEqual(['load->split']);
    expect(runGraph(run('r', 'failed', { steps: [stepRun('a', 'failed')] }), null).edges).toEqual(
      []
    );
  });
});

describe('layoutGraph', () => {
  it('places every step below the steps it depends on', () => {
    const layout = layoutGraph(pipelineGraph(PIPELINE));
    const y = Object.fromEntries(layout.nodes.map(n => [n.id, n.y]));
    expect(y.split).toBeGreaterThan(y.load);
    expect(y.train).toBeGreaterThan(y.split);
    expect(layout.width).toBeGreaterThan(0);
    expect(layout.height).toBeGreaterThan(3 * 42);
  });
});

describe('formatDuration', () => {
  it.each([
    [null, ''],
    [0.25, '0.3 s'],
    [42.4, '42 s'],
    [125, '2 min 5 s'],
    [3720, '1 h 2 min']
  ])('%p -> %p', (seconds, text) => {
    expect(formatDuration(seconds as number | null)).toBe(text);
  });
});
