/**
 * The pipeline DAG drawn with React Flow (@xyflow/react), laid out by dagre, one colour a status.
 */
import { Edge, Handle, MarkerType, Node, NodeProps, Position, ReactFlow } from '@xyflow/react';
import * as React from 'react';

import { IGraph, layoutGraph, NodeState, STATE_LABELS } from '../graph';

type StepNodeData = { label: string; state: NodeState; detail: string };

/** A step: its name, its state in words, its colour from the status class. */
function StepNode(props: NodeProps<Node<StepNodeData>>): JSX.Element {
  const { label, state, detail } = props.data;
  return (
    <div
      className={`jp-mlplat-dag-node jp-mlplat-status-${state}`}
      data-step={label}
      data-status={state}
      title={`${label}: ${STATE_LABELS[state]}${detail ? ` (${detail})` : ''}`}
    >
      <Handle type="target" position={Position.Top} isConnectable={false} />
      <div className="jp-mlplat-dag-name">{label}</div>
      <div className="jp-mlplat-dag-detail">{detail}</div>
      <Handle type="source" position={Position.Bottom} isConnectable={false} />
    </div>
  );
}

const NODE_TYPES = { step: StepNode };

/** A short label for the names an edge carries ("X_num, scaler" or "3 values"). */
export function edgeLabel(names: string[]): string {
  if (names.length === 0) {
    return '';
  }
  const text = names.join(', ');
  return text.length <= 24 ? text : `${names.length} values`;
}

/**
 * Draw `graph`. Read-only: pan and zoom, no dragging or connecting; a click on a step calls
 * `onSelect`.
 */
export function DagView(props: {
  graph: IGraph;
  onSelect?: (step: string) => void;
  selected?: string | null;
}): JSX.Element {
  const layout = React.useMemo(() => layoutGraph(props.graph), [props.graph]);
  const nodes: Node<StepNodeData>[] = layout.nodes.map(node => ({
    id: node.id,
    type: 'step',
    position: { x: node.x, y: node.y },
    data: { label: node.id, state: node.state, detail: node.detail },
    width: node.width,
    height: node.height,
    selected: node.id === props.selected,
    draggable: false,
    connectable: false
  }));
  const edges: Edge[] = layout.edges.map(edge => ({
    id: edge.id,
    source: edge.source,
    target: edge.target,
    label: edgeLabel(edge.names),
    className: edge.names.length ? 'jp-mlplat-dag-edge-data' : 'jp-mlplat-dag-edge-order',
    markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
    style: edge.names.length ? undefined : { strokeDasharray: '4 3' }
  }));
  const height = Math.min(Math.max(layout.height + 16, 120), 460);
  const signature = layout.nodes.map(n => n.id).join('|');
  return (
    <div className="jp-mlplat-dag" style={{ height }} data-steps={layout.nodes.length}>
      <ReactFlow
        key={signature}
        nodes={nodes}
        edges={edges}
        nodeTypes={NODE_TYPES}
        fitView
        fitViewOptions={{ padding: 0.08, maxZoom: 1 }}
        minZoom={0.2}
        maxZoom={1.5}
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable={true}
        zoomOnScroll={false}
        preventScrolling={false}
        proOptions={{ hideAttribution: true }}
        onNodeClick={(_, node) => props.onSelect?.(node.id)}
      />
    </div>
  );
}

/** The colours' meaning, for the states present in a graph. */
export function DagLegend(props: { graph: IGraph }): JSX.Element {
  const states = [...new Set(props.graph.nodes.map(n => n.state))];
  return (
    <div className="jp-mlplat-legend">
      {states.map(state => (
        <span key={state} className="jp-mlplat-legend-item">
          <span className={`jp-mlplat-legend-swatch jp-mlplat-status-${state}`} />
          {STATE_LABELS[state]}
        </span>
      ))}
    </div>
  );
}
