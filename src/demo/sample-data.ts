// Realistic Blue records, shaped like the example in Blue's webhook documentation (a todo with its
// list, project and company nested, about 2-3 KB as JSON). Used by the demo, tests and benchmarks.
import type { BlueEvent, JsonObject } from '../codec/index.js';
import type { Subscription } from '../subscriptions/index.js';

export interface SampleTodoOptions {
  id?: string;
  title?: string;
  projectId?: string;
  companyId?: string;
  listId?: string;
  tagIds?: string[];
  userIds?: string[];
  customFields?: { id: string; value: string | number | null }[];
  done?: boolean;
}

export function sampleTodo(overrides: SampleTodoOptions = {}): JsonObject {
  const projectId = overrides.projectId ?? 'clakt90vu000bvt64hhffqleq';
  const companyId = overrides.companyId ?? 'clakt8jud0002vt64205yyj10';
  const listId = overrides.listId ?? 'clakt9v5t000kvt64f563l90l';
  return {
    id: overrides.id ?? 'clb4zna6x0000vt1swuwso25f',
    uid: '11021cb836f34732b31e5ebd5dd5eb27',
    title: overrides.title ?? 'Prepare the quarterly planning review',
    html: '<p>Collect the numbers from every team and draft the agenda.</p>',
    text: 'Collect the numbers from every team and draft the agenda.',
    position: '32767.5',
    archived: false,
    done: overrides.done ?? false,
    startedAt: null,
    duedAt: '2022-12-15T17:00:00.000Z',
    timezone: 'Europe/Paris',
    createdAt: '2022-12-01T11:23:09.000Z',
    updatedAt: '2022-12-01T11:23:09.241Z',
    createdById: 'claksl2ye0000vtas0h0ln71e',
    todoListId: listId,
    todoCustomFields: (overrides.customFields ?? [{ id: 'cf_priority', value: 'High' }]).map((f) => ({
      id: f.id,
      value: f.value,
      customField: { id: f.id, name: f.id.replace(/^cf_/, ''), type: typeof f.value === 'number' ? 'NUMBER' : 'TEXT' },
    })),
    todoUsers: (overrides.userIds ?? ['claksl2ye0000vtas0h0ln71e']).map((id) => ({
      id,
      user: { id, fullName: 'Ada Lovelace' },
    })),
    todoTags: (overrides.tagIds ?? ['tag_urgent']).map((id) => ({
      id,
      tag: { id, title: id.replace(/^tag_/, ''), color: '#ff0000' },
    })),
    todoList: {
      id: listId,
      uid: 'df0e931e6e8f4fc2905ece9da167d2d3',
      createdAt: '2022-11-17T08:29:22.000Z',
      updatedAt: '2022-11-17T08:29:22.050Z',
      title: 'Planning',
      position: 131070,
      createdById: 'claksl2ye0000vtas0h0ln71e',
      projectId,
      project: {
        id: projectId,
        uid: 'd7db469a8908496f8e5f5e68030fe4c8',
        slug: 'operations',
        name: 'Operations',
        description: 'Day-to-day operations of the company, from hiring to planning.',
        archived: false,
        createdAt: '2022-11-17T08:28:43.000Z',
        updatedAt: '2022-11-17T08:28:42.811Z',
        isTemplate: false,
        isOfficialTemplate: false,
        category: 'GENERAL',
        companyId,
        imageId: null,
        hideEmailFromRoles: null,
        company: {
          id: companyId,
          uid: '400eb3f8238c486caf40957618be9662',
          slug: 'rogue',
          name: 'Rogue',
          description: null,
          createdAt: '2022-11-17T08:28:21.000Z',
          updatedAt: '2022-11-17T08:28:20.726Z',
          freeTrialExpiredAt: '2022-12-01T08:28:15.000Z',
          subscriptionPlan: 'PRO',
        },
      },
    },
  };
}

export interface SampleEventOptions extends SampleTodoOptions {
  eventId?: string;
  type?: string;
  userId?: string;
  previous?: JsonObject | null;
}

export function sampleEvent(overrides: SampleEventOptions = {}): Omit<BlueEvent, 'occurredAtMs'> {
  const projectId = overrides.projectId ?? 'clakt90vu000bvt64hhffqleq';
  const companyId = overrides.companyId ?? 'clakt8jud0002vt64205yyj10';
  return {
    id: overrides.eventId ?? `evt_${Math.random().toString(36).slice(2)}`,
    event: overrides.type ?? 'TODO_CREATED',
    occurredAt: new Date().toISOString(),
    company: { id: companyId },
    project: { id: projectId },
    user: { id: overrides.userId ?? 'claksl2ye0000vtas0h0ln71e' },
    currentValue: sampleTodo({ ...overrides, projectId, companyId }),
    previousValue: overrides.previous ?? null,
  };
}

export function sampleSubscription(overrides: Partial<Subscription> = {}): Subscription {
  const now = new Date().toISOString();
  return {
    id: 'clb4qaopy0000vt24mlp28v03',
    uid: 'edb5b5d51dc9461a952160dbe72153b4',
    name: 'Testing webhook',
    url: 'http://127.0.0.1:8080/hook',
    secret: 'whsec-demo-secret',
    previousSecret: null,
    previousSecretExpiresAt: null,
    status: 'HEALTHY',
    enabled: true,
    metadata: { events: ['TODO_CREATED', 'TODO_MOVED', 'COMMENT_CREATED'], projectIds: ['clakt90vu000bvt64hhffqleq'] },
    companyId: 'clakt8jud0002vt64205yyj10',
    createdById: 'claksl2ye0000vtas0h0ln71e',
    createdAt: now,
    updatedAt: now,
    filters: null,
    rateLimitPerSecond: null,
    ordering: 'none',
    headers: null,
    ...overrides,
  };
}
