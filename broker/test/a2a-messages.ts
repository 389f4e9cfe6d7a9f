/** A2A request shapes for @a2a-js/sdk's client (no broker here, so the e2e suite can use them too). */
import { randomUUID } from 'node:crypto';
import { Role, type Message } from '@a2a-js/sdk';

export function userMessage(text: string, ids: { contextId?: string; taskId?: string } = {}): Message {
  return {
    messageId: randomUUID(),
    contextId: ids.contextId ?? '',
    taskId: ids.taskId ?? '',
    role: Role.ROLE_USER,
    parts: [{ content: { $case: 'text', value: text }, metadata: undefined, filename: '', mediaType: 'text/plain' }],
    metadata: undefined,
    extensions: [],
    referenceTaskIds: [],
  };
}

export const sendParams = (message: Message, configuration?: { returnImmediately?: boolean; historyLength?: number }) => ({
  tenant: '',
  message,
  configuration: configuration ? { acceptedOutputModes: [], taskPushNotificationConfig: undefined, returnImmediately: configuration.returnImmediately ?? false, historyLength: configuration.historyLength } : undefined,
  metadata: undefined,
});
