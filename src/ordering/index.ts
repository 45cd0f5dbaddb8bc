export { EntityOrder, entityOf, type LineState, type OrderKey, type OrderStatus, type Turn } from './entity-order.js';
