package models

// BackendType is a cloud LLM provider.
type BackendType string

// The providers cloudkeys supports.
const (
	BackendOpenAI              BackendType = "OPENAI"
	BackendAnthropic           BackendType = "ANTHROPIC"
	BackendOpenAICompatible    BackendType = "OPENAI_COMPATIBLE"
	BackendAnthropicCompatible BackendType = "ANTHROPIC_COMPATIBLE"
	BackendTogether            BackendType = "TOGETHER"
	BackendGroq                BackendType = "GROQ"
	BackendFireworks           BackendType = "FIREWORKS"
	BackendMistral             BackendType = "MISTRAL"
	BackendDeepSeek            BackendType = "DEEPSEEK"
)

// APIType is the wire protocol of a provider.
type APIType string

// The protocols.
const (
	APIOpenAI    APIType = "OPENAI"
	APIAnthropic APIType = "ANTHROPIC"
)

// KeyStatus says whether a stored API key can be opened.
type KeyStatus string

// The key states.
const (
	KeyOK           KeyStatus = "OK"
	KeyNeedsReentry KeyStatus = "NEEDS_REENTRY"
)

// Provider is a backend type with the defaults its credentials get.
type Provider struct {
	BackendType BackendType
	APIType     APIType
	// DefaultBaseURL is nil for the *_COMPATIBLE types, which need one.
	DefaultBaseURL *string
}

func ptr(s string) *string { return &s }

// Providers lists every supported backend type, in the schema's order.
var Providers = []Provider{
	{BackendOpenAI, APIOpenAI, ptr("https://api.openai.com")},
	{BackendAnthropic, APIAnthropic, ptr("https://api.anthropic.com")},
	{BackendOpenAICompatible, APIOpenAI, nil},
	{BackendAnthropicCompatible, APIAnthropic, nil},
	{BackendTogether, APIOpenAI, ptr("https://api.together.xyz")},
	{BackendGroq, APIOpenAI, ptr("https://api.groq.com/openai")},
	{BackendFireworks, APIOpenAI, ptr("https://api.fireworks.ai/inference")},
	{BackendMistral, APIOpenAI, ptr("https://api.mistral.ai")},
	{BackendDeepSeek, APIOpenAI, ptr("https://api.deepseek.com")},
}

// ProviderOf returns the provider of a backend type.
func ProviderOf(b BackendType) (Provider, bool) {
	for _, p := range Providers {
		if p.BackendType == b {
			return p, true
		}
	}
	return Provider{}, false
}
