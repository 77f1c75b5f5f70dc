// Re-export what static/designer/process_designer.js needs; `vue` stays external so the
// bundle uses NiceGUI's own Vue through the import map.
export { VueFlow, Handle, Position, MarkerType, useVueFlow } from '@vue-flow/core';
export { Background } from '@vue-flow/background';
export { Controls } from '@vue-flow/controls';
export { MiniMap } from '@vue-flow/minimap';
