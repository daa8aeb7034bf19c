package campaigns_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/turbina-dialer/turbina/campaigns"
)

func TestContactValues(t *testing.T) {
	c := campaigns.Contact{Name: "Ana", Phone: "+5511987654321", Attributes: map[string]string{"fatura": "R$ 10,00", "Name": "attr"}}
	tests := []struct {
		name    string
		columns []string
		want    []string
		wantErr error
	}{
		{"none", nil, []string{}, nil},
		{"name and phone in any case", []string{"NAME", "Phone"}, []string{"Ana", "+5511987654321"}, nil},
		{"attribute in order", []string{"fatura", "name"}, []string{"R$ 10,00", "Ana"}, nil},
		{"attribute names are exact", []string{"Fatura"}, nil, campaigns.ErrMissingColumn},
		{"missing column", []string{"name", "cpf"}, nil, campaigns.ErrMissingColumn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := c.Values(tt.columns)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err == nil && !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
