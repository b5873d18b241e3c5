/**
 * The pipeline DAG as nodes and edges with a status each, laid out by dagre
 * (`components/dag-view.tsx` draws it with React Flow). Pure functions.
 */
import dagre from '@dagrejs/dagre';

import { IDescribePipeline, IDescribeRun, StepStatus } from './api';

/** A node's colour key: a step run's status, or what a run now would do with the step. */
export type NodeState = StepStatus | 'will-run' | 'not-in-run';

export interface IGraphNode {
  id: string;
  state: NodeState;
  /** Second line under the name: the duration, "cached", ... */
  detail: string;
}

export interface IGraphEdge {
  id: string;
  source: string;
  target: string;
  /** The names the data edge carries; empty for an ordering edge (`after`/`prev:`). */
  names: string[];
}

export interface IGraph {
  nodes: IGraphNode[];
  edges: IGraphEdge[];
}

export interface IPlacedNode extends IGraphNode {
  /** Top-left corner. */
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface ILayout {
  nodes: IPlacedNode[];
  edges: IGraphEdge[];
  width: number;
  height: number;
}

export const NODE_WIDTH = 132;
export const NODE_HEIGHT = 42;

/** Human words for a node state (legend, tooltips). */
export const STATE_LABELS: Record<NodeState, string> = {
  pending: 'pending',
  running: 'running',
  succeeded: 'succeeded',
  cached: 'from cache',
  failed: 'failed',
  cancelled: 'cancelled',
  skipped: 'skipped',
  upstream_failed: 'upstream failed',
  interrupted: 'interrupted',
  'will-run': 'would run',
  'not-in-run': 'not in this run'
};

/** "1.2 s", "3 min 4 s", "" for none. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) {
    return '';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 60) {
    return `${Math.round(seconds)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  const rest = Math.round(seconds - minutes * 60);
  if (minutes < 60) {
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  return `${hours} h ${minutes - hours * 60} min`;
}

function edgesOf(
  pipeline: IDescribePipeline | null,
  keep: (name: string) => boolean
): IGraphEdge[] {
  if (!pipeline) {
    return [];
  }
  const edges = new Map<string, IGraphEdge>();
  for (const edge of pipeline.edges ?? []) {
    if (keep(edge.source) && keep(edge.target)) {
      const id = `${edge.source}->${edge.target}`;
      const names = [...(edges.get(id)?.names ?? []), ...(edge.names ?? [])];
      edges.set(id, { id, source: edge.source, target: edge.target, names });
    }
  }
  for (const step of pipeline.steps) {
    for (const before of step.after ?? []) {
      const id = `${before}->${step.name}`;
      if (!edges.has(id) && keep(before) && keep(step.name)) {
        edges.set(id, { id, source: before, target: step.name, names: [] });
      }
    }
  }
  return [...edges.values()];
}

/**
 * The graph of a notebook's pipeline: what a run now would do (take from cache or run), or, with
 * `run`, the status of each step in that run.
 */
export function pipelineGraph(
  pipeline: IDescribePipeline,
  run: IDescribeRun | null = null
): IGraph {
  const steps = new Map((run?.steps ?? []).map(s => [s.name, s]));
  const nodes: IGraphNode[] = pipeline.steps.map(step => {
    if (run) {
      const stepRun = steps.get(step.name);
      if (!stepRun) {
        return { id: step.name, state: 'not-in-run', detail: '' };
      }
      return {
        id: step.name,
        state: stepRun.status,
        detail:
          stepRun.status === 'cached'
            ? 'from cache'
            : formatDuration(stepRun.duration) || STATE_LABELS[stepRun.status]
      };
    }
    return step.cached
      ? { id: step.name, state: 'cached', detail: 'from cache' }
      : { id: step.name, state: 'will-run', detail: gpuNote(step.gpus) || 'would run' };
  });
  const names = new Set(nodes.map(n => n.id));
  return { nodes, edges: edgesOf(pipeline, name => names.has(name)) };
}

function gpuNote(gpus: number | undefined): string {
  return gpus ? `would run · ${gpus} GPU` : '';
}

/**
 * The graph of a run: its steps with their status; edges from the pipeline when it is known
 * (the notebook's current parse), else none.
 */
export function runGraph(run: IDescribeRun, pipeline: IDescribePipeline | null): IGraph {
  const nodes: IGraphNode[] = run.steps.map(step => ({
    id: step.name,
    state: step.status,
    detail:
      step.status === 'cached'
        ? 'from cache'
        : formatDuration(step.duration) || STATE_LABELS[step.status]
  }));
  const names = new Set(nodes.map(n => n.id));
  return { nodes, edges: edgesOf(pipeline, name => names.has(name)) };
}

/**
 * Place the nodes top to bottom with dagre (the layered layout most DAG viewers use).
 */
export function layoutGraph(
  graph: IGraph,
  options: { nodeWidth?: number; nodeHeight?: number; rankdir?: 'TB' | 'LR' } = {}
): ILayout {
  const width = options.nodeWidth ?? NODE_WIDTH;
  const height = options.nodeHeight ?? NODE_HEIGHT;
  const g = new dagre.graphlib.Graph();
  g.setGraph({
    rankdir: options.rankdir ?? 'TB',
    nodesep: 24,
    ranksep: 36,
    marginx: 8,
    marginy: 8
  });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of graph.nodes) {
    g.setNode(node.id, { width, height });
  }
  for (const edge of graph.edges) {
    g.setEdge(edge.source, edge.target);
  }
  dagre.layout(g);
  const nodes = graph.nodes.map(node => {
    const placed = g.node(node.id);
    return { ...node, x: placed.x - width / 2, y: placed.y - height / 2, width, height };
  });
  const label = g.graph();
  return {
    nodes,
    edges: graph.edges,
    width: label.width ?? 0,
    height: label.height ?? 0
  };
}
