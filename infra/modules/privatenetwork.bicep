// Private networking (main.bicep's privateNetworking): a virtual network with a subnet delegated
// to the app's VNet integration and one for private endpoints; a private endpoint for each storage
// service the app uses (the data account's blob, queue and table, the content account's file),
// each with its private DNS zone linked to the network so the accounts' usual host names resolve
// to the private addresses inside it.

@description('Azure region of the network and the endpoints (private DNS zones are global).')
param location string

@description('Base name; resources are named vnet-<name>, pe-<name>-<service>.')
param name string

@description('Address space of the virtual network.')
param addressPrefix string

@description('Subnet delegated to Microsoft.Web/serverFarms for the app\'s VNet integration.')
param integrationSubnetPrefix string

@description('Subnet of the private endpoints.')
param privateEndpointSubnetPrefix string

@description('Resource id of the data account (blob, queue, table).')
param dataAccountId string

@description('Resource id of the content-share account (file).')
param contentAccountId string

param tags object = {}

var integrationSubnetName = 'snet-integration'
var privateEndpointSubnetName = 'snet-private-endpoints'

// One entry per private endpoint: the account and the storage service (its group id).
var endpoints = [
  {
    service: 'blob'
    accountId: dataAccountId
  }
  {
    service: 'queue'
    accountId: dataAccountId
  }
  {
    service: 'table'
    accountId: dataAccountId
  }
  {
    service: 'file'
    accountId: contentAccountId
  }
]

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: 'vnet-${name}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: integrationSubnetName
        properties: {
          addressPrefix: integrationSubnetPrefix
          delegations: [
            {
              name: 'serverFarms'
              properties: {
                serviceName: 'Microsoft.Web/serverFarms'
              }
            }
          ]
        }
      }
      {
        name: privateEndpointSubnetName
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for endpoint in endpoints: {
  name: 'privatelink.${endpoint.service}.${environment().suffixes.storage}'
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (endpoint, i) in endpoints: {
  parent: zones[i]
  name: 'vnet-${name}'
  location: 'global'
  tags: tags
  properties: {
    registrationEnabled: false
    virtualNetwork: {
      id: vnet.id
    }
  }
}]

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2023-11-01' = [for endpoint in endpoints: {
  name: 'pe-${name}-${endpoint.service}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: '${vnet.id}/subnets/${privateEndpointSubnetName}'
    }
    privateLinkServiceConnections: [
      {
        name: endpoint.service
        properties: {
          privateLinkServiceId: endpoint.accountId
          groupIds: [
            endpoint.service
          ]
        }
      }
    ]
  }
}]

// Registers each endpoint's address in its zone, and keeps it there when the endpoint changes.
resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = [for (endpoint, i) in endpoints: {
  parent: privateEndpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: endpoint.service
        properties: {
          privateDnsZoneId: zones[i].id
        }
      }
    ]
  }
}]

output integrationSubnetId string = '${vnet.id}/subnets/${integrationSubnetName}'
