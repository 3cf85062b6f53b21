// `%x` templates as celery multi expands them in node names, file names and option values.
//
//   %n %N  short node name ("w1")         %h %p  full node name ("w1@host.example.com")
//   %d     host part ("host.example.com") %i %I  left as they are, for the worker's pool processes
//   %%     a literal "%" (ccmulti addition: Celery has no escape)
//
// Any other %x with x a letter, digit or '_' is an error naming the template and where it came from.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace ccmulti::naming {

// Values by key letter; keys absent from the map are errors, except 'i' and 'I', which stay as written.
using TemplateKeys = std::map<char, std::string>;

// `origin` says where the template came from ("--logfile", "node name"), for the error message.
std::string expand(std::string_view text, const TemplateKeys& keys, std::string_view origin);

// Keys for a node named "shortname@host".
TemplateKeys node_keys(std::string_view shortname, std::string_view host);

// Keys for expanding a node *name* such as "w1@%h": %h the machine's host name, %n its first label, %d the rest.
TemplateKeys host_keys(std::string_view machine_hostname);

}  // namespace ccmulti::naming
