// Textos da página agent em português do Brasil (mesmas chaves de agent.en.js); entram em pt-BR.js.
export default {
  'call.inbound.whatsapp_call': 'Chamada recebida pelo WhatsApp',
};
