// Textos da página supervisor em português do Brasil (mesmas chaves de supervisor.en.js); entram em pt-BR.js.
export default {
};
