// English strings of the agent page (keys shared with agent.pt-BR.js); merged into en.js.
export default {
  'call.inbound.whatsapp_call': 'Incoming WhatsApp call',
};
