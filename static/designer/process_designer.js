// The process designer canvas: Vue Flow inside NiceGUI's own Vue app.
//
// Python owns the model. This component only draws the graph it is given and sends intents:
// drop, connect, move, remove, select, edge-label, copy, paste, undo, redo, ready.
// Python answers with syncGraph (the whole graph; only differences are applied), setErrors
// through the reactive `errors` prop, fitView and focus.
import { VueFlow, Handle, Position, useVueFlow, Background, Controls, MiniMap }
  from "trinity-vueflow";
import { markRaw } from "vue";
import { loadResource } from "../../static/utils/resources.js";

const TrinityNode = {
  name: "TrinityNode",
  components: { Handle },
  props: ["id", "data", "selected"],
  inject: ["designerErrors"],
  computed: {
    problems() { return this.designerErrors()[this.id] || []; },
    round() { return /circle/.test(this.data.shape); },
    diamond() { return this.data.shape === "diamond"; },
    left() { return Position.Left; },
    right() { return Position.Right; },
    bottom() { return Position.Bottom; },
  },
  template: `
    <div :class="['tn', data.shape, 'tn-' + data.kind, {selected, 'has-errors': problems.length}]"
         :data-testid="'node-' + id" :title="problems.join('\\n')">
      <Handle v-if="data.kind !== 'start'" type="target" id="in" :position="left" />
      <div class="tn-shape">
        <q-icon :name="data.icon" size="20px" class="tn-icon" />
        <div v-if="!round && !diamond" class="tn-text">
          <div class="tn-label">{{ data.label }}</div>
          <div class="tn-sub">{{ data.subtitle }}</div>
        </div>
      </div>
      <div v-if="round || diamond" class="tn-caption">{{ data.label }}</div>
      <span v-if="problems.length" class="tn-badge" :data-testid="'badge-' + id">{{ problems.length }}</span>
      <Handle v-if="data.kind !== 'end'" type="source" id="out" :position="right" />
      <Handle v-if="diamond && data.kind !== 'parallel_gateway'" type="source" id="default"
              :position="bottom" class="tn-default-handle" title="default route" />
    </div>`,
};

export default {
  components: { VueFlow, Background, Controls, MiniMap },
  props: {
    nodes: { type: Array, default: () => [] },
    edges: { type: Array, default: () => [] },
    errors: { type: Object, default: () => ({}) },
    dndMime: { type: String, default: "application/x-trinity-kind" },
    readOnly: { type: Boolean, default: false },
    resourcePath: String,
  },
  // Every event Python listens to is declared, or NiceGUI's listeners fall through to the
  // root element and fire on native DOM events too (drop twice, DragEvent payloads).
  emits: ["drop", "connect", "move", "remove", "select", "edge-label", "copy", "paste",
    "undo", "redo", "ready"],
  setup() {
    const flowId = "trinity-flow-" + Math.random().toString(36).slice(2);
    return { flowId, flow: markRaw(useVueFlow(flowId)) };
  },
  data() {
    return {
      // A copy: binding the live props and also adding nodes duplicated them.
      initialNodes: JSON.parse(JSON.stringify(this.nodes)),
      initialEdges: JSON.parse(JSON.stringify(this.edges)),
      nodeTypes: { trinity: markRaw(TrinityNode) },
      labelEditor: null,
      fitted: false,
      viewReady: false, // data-ready on the root: the first fit is done (for tests)
    };
  },
  provide() {
    return { designerErrors: () => this.errors || {} };
  },
  async mounted() {
    await this.$nextTick(); // window.path_prefix is set after the first tick
    if (this.resourcePath) {
      await loadResource(window.path_prefix + `${this.resourcePath}/dist/vueflow.css`);
      await loadResource(window.path_prefix + `${this.resourcePath}/designer.css`);
    }
  },
  watch: {
    errors: { handler() { this.paintEdgeErrors(); }, deep: true },
  },
  methods: {
    // --- Python → browser ------------------------------------------------------------
    syncGraph(graph) {
      const f = this.flow;
      const wantNodes = new Map(graph.nodes.map((n) => [n.id, n]));
      const wantEdges = new Map(graph.edges.map((e) => [e.id, e]));
      const goneEdges = f.getEdges.value.filter((e) => !wantEdges.has(e.id));
      const goneNodes = f.getNodes.value.filter((n) => !wantNodes.has(n.id)).map((n) => n.id);
      // Applied as changes, not through removeEdges/removeNodes: those skip elements marked
      // `deletable: false`, so the derived start/end edges stayed drawn once a step got a
      // predecessor or a successor.
      if (goneEdges.length) {
        f.applyEdgeChanges(goneEdges.map((e) => ({ type: "remove", id: e.id, source: e.source,
          target: e.target, sourceHandle: e.sourceHandle, targetHandle: e.targetHandle })));
      }
      if (goneNodes.length) f.applyNodeChanges(goneNodes.map((id) => ({ type: "remove", id })));
      const newNodes = [];
      for (const n of graph.nodes) {
        const have = f.findNode(n.id);
        if (!have) { newNodes.push(n); continue; }
        have.data = n.data;
        if (have.position.x !== n.position.x || have.position.y !== n.position.y) {
          have.position = { ...n.position };
        }
      }
      if (newNodes.length) f.addNodes(newNodes);
      const newEdges = [];
      for (const e of graph.edges) {
        const have = f.findEdge(e.id);
        if (!have) { newEdges.push(e); continue; }
        Object.assign(have, { label: e.label, class: e.class, data: e.data,
          sourceHandle: e.sourceHandle });
      }
      if (newEdges.length) f.addEdges(newEdges);
      this.paintEdgeErrors();
    },
    setGraph(graph) {
      this.flow.setEdges([]);
      this.flow.setNodes(graph.nodes);
      this.flow.setEdges(graph.edges);
      // A new graph is fitted again once its nodes are measured (onReady); data-ready says
      // when. The timer covers a graph whose nodes Vue Flow does not measure again.
      this.fitted = false;
      this.viewReady = false;
      setTimeout(() => { if (!this.viewReady) this.fitOnce(); }, 1500);
      this.paintEdgeErrors();
    },
    // Never zoom in past 100 %: a new process (just start and end) would open at 250 %, and
    // steps dropped then landed on top of each other.
    fitView() { this.flow.fitView({ padding: 0.15, maxZoom: 1 }); },
    fitOnce() { this.fitted = true; this.fitView(); this.viewReady = true; },
    focus(id) {
      const node = this.flow.findNode(id);
      const edge = node ? null : this.flow.findEdge(id);
      this.flow.removeSelectedElements();
      if (node) {
        this.flow.addSelectedNodes([node]);
        this.flow.fitView({ nodes: [id], padding: 0.6, duration: 200 });
      } else if (edge) {
        this.flow.addSelectedEdges([edge]);
      }
    },
    highlight(ids, cls) {
      const wanted = new Set(ids);
      for (const n of this.flow.getNodes.value) {
        const others = (n.class || "").split(" ").filter((c) => c && !c.startsWith("diff-"));
        n.class = [...others, wanted.has(n.id) ? cls : ""].filter(Boolean).join(" ");
      }
    },
    paintEdgeErrors() {
      const errors = this.errors || {};
      for (const e of this.flow.getEdges.value) {
        const bad = !!errors[e.id];
        const base = (e.class || "").split(" ").filter((c) => c && c !== "has-errors");
        e.class = (bad ? [...base, "has-errors"] : base).join(" ");
      }
    },
    // --- browser → Python ------------------------------------------------------------
    onDragOver(ev) {
      if (ev.dataTransfer) ev.dataTransfer.dropEffect = "move";
    },
    onDrop(ev) {
      const kind = ev.dataTransfer && ev.dataTransfer.getData(this.dndMime);
      if (!kind || this.readOnly) return;
      const p = this.flow.screenToFlowCoordinate({ x: ev.clientX, y: ev.clientY });
      this.$emit("drop", { kind, x: p.x, y: p.y });
    },
    onConnect(c) {
      this.$emit("connect", { source: c.source, target: c.target,
        sourceHandle: c.sourceHandle, targetHandle: c.targetHandle });
    },
    onDragStop(ev) {
      const nodes = ev.nodes && ev.nodes.length ? ev.nodes : [ev.node];
      this.$emit("move", nodes.map((n) => ({ id: n.id, x: n.position.x, y: n.position.y })));
    },
    onNodeClick(ev) { this.$emit("select", { kind: "node", id: ev.node.id, ids: this.selectedIds() }); },
    onEdgeClick(ev) { this.$emit("select", { kind: "edge", id: ev.edge.id }); },
    onPaneClick() { this.labelEditor = null; this.$emit("select", { kind: "pane", id: null }); },
    onEdgeDoubleClick(ev) {
      if (this.readOnly || !ev.edge.data || ev.edge.data.virtual) return;
      const box = this.$el.getBoundingClientRect();
      this.labelEditor = { id: ev.edge.id, value: ev.edge.label === "always" ? "" : ev.edge.label || "",
        x: ev.event.clientX - box.left, y: ev.event.clientY - box.top };
      this.$nextTick(() => this.$refs.labelInput && this.$refs.labelInput.focus());
    },
    commitLabel() {
      if (!this.labelEditor) return;
      this.$emit("edge-label", { id: this.labelEditor.id, label: this.labelEditor.value });
      this.labelEditor = null;
    },
    selectedIds() { return this.flow.getSelectedNodes.value.map((n) => n.id); },
    onKey(ev) {
      if (ev.target && /INPUT|TEXTAREA/.test(ev.target.tagName)) return;
      const mod = ev.ctrlKey || ev.metaKey;
      const key = ev.key.toLowerCase();
      if (!this.readOnly && (ev.key === "Delete" || ev.key === "Backspace")) {
        const nodes = this.selectedIds();
        const edges = this.flow.getSelectedEdges.value.map((e) => e.id);
        if (nodes.length || edges.length) this.$emit("remove", { nodes, edges });
      } else if (mod && key === "c") {
        this.$emit("copy", { ids: this.selectedIds() });
      } else if (mod && key === "v" && !this.readOnly) {
        this.$emit("paste", {});
      } else if (mod && (key === "y" || (key === "z" && ev.shiftKey)) && !this.readOnly) {
        this.$emit("redo", {});
      } else if (mod && key === "z" && !this.readOnly) {
        this.$emit("undo", {});
      } else {
        return;
      }
      ev.preventDefault();
    },
    onReady() {
      // The splitter may still be sizing the pane: fit once the layout has settled.
      if (!this.fitted) {
        this.fitted = true;
        setTimeout(() => this.fitOnce(), 120);
      }
      this.paintEdgeErrors();
      this.$emit("ready", {});
    },
  },
  template: `
    <div class="trinity-designer" tabindex="0" data-testid="designer-canvas"
         :data-ready="viewReady ? 'true' : 'false'"
         @drop.prevent.stop="onDrop" @dragover.prevent="onDragOver" @keydown="onKey">
      <VueFlow :id="flowId" :nodes="initialNodes" :edges="initialEdges" :node-types="nodeTypes"
               :snap-to-grid="true" :snap-grid="[20, 20]" :delete-key-code="null"
               :nodes-draggable="!readOnly" :nodes-connectable="!readOnly"
               :edges-updatable="false" :min-zoom="0.1" :max-zoom="2.5"
               selection-key-code="Shift" :multi-selection-key-code="['Control', 'Meta']"
               :default-edge-options="{ type: 'smoothstep', markerEnd: 'arrowclosed' }"
               @connect="onConnect" @node-drag-stop="onDragStop" @node-click="onNodeClick"
               @edge-click="onEdgeClick" @pane-click="onPaneClick"
               @edge-double-click="onEdgeDoubleClick" @nodes-initialized="onReady">
        <Background pattern-color="#c8ccd4" :gap="20" />
        <MiniMap pannable zoomable />
        <Controls />
      </VueFlow>
      <input v-if="labelEditor" ref="labelInput" v-model="labelEditor.value"
             class="trinity-label-editor" data-testid="edge-label-editor"
             placeholder="condition, e.g. steps.score.output.score >= 70"
             :style="{ left: labelEditor.x + 'px', top: labelEditor.y + 'px' }"
             @keydown.enter.stop="commitLabel" @keydown.esc.stop="labelEditor = null"
             @blur="commitLabel" />
    </div>`,
};
